"""Fixtures: a Redis-compatible server of our own, free ports, and `pacs-ingest` processes."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from pacs_ingest.embedded_redis import RedisServer, free_port, server_binary
from tests.helpers import Command, wait_for_port
from tests.receivers import Receivers


@pytest.fixture(scope="session", autouse=True)
def dcmtk() -> None:
    missing = [tool for tool in ("storescu", "echoscu", "storescp") if not shutil.which(tool)]
    if missing:
        pytest.fail(
            f"DCMTK is missing ({', '.join(missing)}): run the README's test command, "
            "which installs it",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """redis-server from PATH, else the embedded valkey-server; never the machine's own."""
    server = RedisServer(server_binary(), tmp_path_factory.mktemp("redis"), persistent=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    Redis.from_url(redis_server.url).flushall()
    return redis_server.url


@pytest.fixture
def port() -> int:
    return free_port()


class Pipeline:
    """Paths of one test's pipeline, and a way to start `pacs-ingest` commands on them.

    With an empty `redis_url`, `up` runs its embedded server (and `receive`, `work` need one).
    """

    def __init__(self, tmp_path: Path, redis_url: str, port: int) -> None:
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.port = port
        self.archive = tmp_path / "archive"
        self.spool = tmp_path / "spool"
        self.commands: list[Command] = []

    def run(self, *args: str, log_name: str = "pacs-ingest.log") -> Command:
        command = Command(list(args), self.tmp_path / log_name).start()
        self.commands.append(command)
        return command

    def up(self, *extra: str, ae_title: str = "INGEST", sweep_interval: int = 1) -> Command:
        return self._listen("up", extra, ae_title, sweep_interval)

    def receive(self, *extra: str, ae_title: str = "INGEST") -> Command:
        return self._listen("receive", extra, ae_title, 1)

    def _listen(
        self, name: str, extra: tuple[str, ...], ae_title: str, sweep_interval: int
    ) -> Command:
        """Start `up` or `receive` on this pipeline's paths and wait until the port listens."""
        command = self.run(
            name,
            *("-b", f"{ae_title}:{self.port}", "--directory", str(self.archive)),
            *("--spool-dir", str(self.spool)),
            *(("--redis-url", self.redis_url) if self.redis_url else ()),
            *("--sweep-interval", str(sweep_interval)),
            *extra,
            log_name=f"{name}.log",
        )
        wait_for_port(self.port)
        return command

    def work(self, *extra: str) -> Command:
        """`work`, allowed to file into this test's folder (spool and archive are below it)."""
        return self.run(
            "work",
            *("--redis-url", self.redis_url, "--allow-directory", str(self.tmp_path)),
            *extra,
            log_name="work.log",
        )

    def stop_all(self) -> None:
        for command in reversed(self.commands):
            if command.process is not None and command.process.poll() is None:
                try:
                    command.stop()
                except Exception:
                    command.kill()


@pytest.fixture
def pipeline(tmp_path: Path, redis_url: str, port: int) -> Iterator[Pipeline]:
    pipe = Pipeline(tmp_path, redis_url, port)
    yield pipe
    pipe.stop_all()


@pytest.fixture(scope="module")
def receivers(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer
) -> Iterator[Receivers]:
    """`pacs-ingest receive` processes shared by one test module's tests."""
    started = Receivers(tmp_path_factory.mktemp("receivers"), redis_server.url)
    yield started
    started.stop_all()
