"""`up`'s embedded Redis: supervised, restarted, never orphaned or doubled, found from the spool.

Real processes only: `pacs-ingest up` with its own valkey-server, DCMTK storescu as the sender,
SIGKILL as the fault.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from redis import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from rq import Worker

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import RedisServer, valkey_binary
from pacs_ingest.redis_home import RedisHome, find_redis_url
from pacs_ingest.shared import part10
from tests.conftest import Pipeline
from tests.helpers import (
    ROOT,
    Sender,
    alive,
    archive_files,
    started_processes,
    wait_until,
    waiting_objects,
)
from tests.receivers import run_pacs_ingest

OBJECTS = 600
KILL_AFTER = 60  # objects spooled or filed: the stream is well under way


def _server_pid(spool: Path) -> int:
    return orjson.loads((spool / "redis" / "pids.json").read_bytes())["server"][0]


def _servers_on(spool: Path) -> list[int]:
    """Live processes whose command line names the spool's server directory."""
    home = os.fsencode(spool / "redis")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if home in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _stop(pipeline: Pipeline) -> None:
    """Stop the test's commands, and any server a failed test left on its spool."""
    pipeline.stop_all()
    for pid in _servers_on(pipeline.spool):
        os.kill(pid, signal.SIGKILL)


def _uid(path: Path) -> str:
    with open(path, "rb") as fp:
        return part10.read_file_meta(fp).media_storage_sop_instance_uid


def _filed(archive: Path) -> Counter:
    return Counter(_uid(path) for path in archive_files(archive))


def _progress(pipeline: Pipeline) -> int:
    return len(waiting_objects(pipeline.spool)) + len(archive_files(pipeline.archive))


def _events(log_text: str, name: str) -> int:
    return log_text.count(f'"event":"{name}"')


def _assert_filed_once(pipeline: Pipeline, acknowledged: set[Path]) -> None:
    filed = _filed(pipeline.archive)
    wanted = {_uid(path) for path in acknowledged}
    assert set(filed) == wanted
    assert all(count == 1 for count in filed.values())
    assert not list((pipeline.spool / "failed").glob("*.dcm"))


@pytest.mark.timeout(240)
def test_killed_server_is_restarted_and_every_acknowledged_object_filed_within_30s(
    tmp_path: Path, port: int
) -> None:
    sources = make_corpus(tmp_path / "corpus", OBJECTS, size=16384)
    pipeline = Pipeline(tmp_path, "", port)
    try:
        up = pipeline.up("--workers", "2", sweep_interval=10)  # the default sweep interval
        sender = Sender(sources, port, time.monotonic() + 150)
        sender.start()
        wait_until(lambda: _progress(pipeline) >= KILL_AFTER, 60, "the stream to get going")
        killed = _server_pid(pipeline.spool)
        os.kill(killed, signal.SIGKILL)
        killed_at = time.monotonic()
        assert sender.is_alive(), "the sender was done before the kill"
        sender.join()
        assert len(sender.acknowledged) == OBJECTS
        wanted = {_uid(path) for path in sender.acknowledged}
        wait_until(
            lambda: set(_filed(pipeline.archive)) >= wanted,
            30 - (time.monotonic() - killed_at),
            "every acknowledged object to be filed within 30 s of the kill",
        )
        _assert_filed_once(pipeline, sender.acknowledged)
        restarted = _server_pid(pipeline.spool)
        assert restarted != killed and _servers_on(pipeline.spool) == [restarted]
        assert up.process.poll() is None
        log_text = up.log()
        assert _events(log_text, "redis.embedded_restarted") == 1
        assert "Traceback" not in log_text
        # One warning per process and outage: 2 workers, 2 receivers, the sweep requests.
        assert _events(log_text, "redis.unreachable") <= 2
        assert _events(log_text, "queue.enqueue_failed") <= 2
        assert _events(log_text, "process.exited") == 0
    finally:
        _stop(pipeline)


@pytest.mark.timeout(240)
def test_sigkill_of_up_leaves_no_process_and_the_next_up_files_everything(
    tmp_path: Path, port: int
) -> None:
    sources = make_corpus(tmp_path / "corpus", OBJECTS, size=16384)
    pipeline = Pipeline(tmp_path, "", port)
    try:
        first = pipeline.up()
        sender = Sender(sources, port, time.monotonic() + 150)
        sender.start()
        wait_until(lambda: _progress(pipeline) >= KILL_AFTER, 60, "the stream to get going")
        first_processes = [pid for _, pid in started_processes(first.log())]
        first_processes.append(_server_pid(pipeline.spool))
        os.kill(first.pid, signal.SIGKILL)
        first.process.wait()
        assert sender.is_alive(), "the sender was done before the kill"
        wait_until(
            lambda: not any(alive(pid) for pid in first_processes),
            20,
            "every process of the killed up to die with it",
        )
        assert _servers_on(pipeline.spool) == []
        second = pipeline.up()
        assert _servers_on(pipeline.spool) == [_server_pid(pipeline.spool)]
        sender.join()
        assert len(sender.acknowledged) == OBJECTS
        wanted = {_uid(path) for path in sender.acknowledged}
        wait_until(lambda: set(_filed(pipeline.archive)) >= wanted, 60, "everything filed")
        _assert_filed_once(pipeline, sender.acknowledged)
        assert _servers_on(pipeline.spool) == [_server_pid(pipeline.spool)]
        assert second.process.poll() is None
    finally:
        _stop(pipeline)


def test_a_second_up_on_a_live_spool_exits_2(tmp_path: Path, port: int) -> None:
    pipeline = Pipeline(tmp_path, "", port)
    try:
        first = pipeline.up()
        other_port = str(port + 1 if port < 65535 else port - 1)
        second = run_pacs_ingest(
            "up",
            *("-b", f"INGEST:{other_port}", "--directory", str(tmp_path / "other")),
            *("--spool-dir", str(pipeline.spool)),
        )
        assert second.returncode == 2
        assert f"is in use by pacs-ingest up (pid {first.pid})" in second.stderr
        assert _servers_on(pipeline.spool) == [_server_pid(pipeline.spool)]
        assert first.process.poll() is None
    finally:
        _stop(pipeline)


def test_a_server_left_by_a_dead_up_is_stopped_at_start_up(tmp_path: Path, port: int) -> None:
    """What PR_SET_PDEATHSIG prevents, made by hand: a server holding the spool's lock whose
    `up` is gone (as an older version, or a server started from a thread, would leave)."""
    pipeline = Pipeline(tmp_path, "", port)
    home = RedisHome(pipeline.spool)
    lock = home.claim()
    orphan = home.server(lock)
    orphan.start()
    dead_up = subprocess.Popen(["true"])
    dead_up.wait()
    home.record(dead_up.pid, orphan.pid)
    os.close(lock)  # only the orphan holds it now
    try:
        up = pipeline.up()
        assert orphan.process.poll() is not None, "the orphaned server still runs"
        assert _servers_on(pipeline.spool) == [_server_pid(pipeline.spool)]
        assert _server_pid(pipeline.spool) != orphan.pid
        assert _events(up.log(), "redis.orphan_stopped") == 1
    finally:
        _stop(pipeline)
        orphan.kill()


@pytest.mark.timeout(120)
def test_up_gives_up_with_a_message_when_its_server_keeps_dying(tmp_path: Path, port: int) -> None:
    pipeline = Pipeline(tmp_path, "", port)
    try:
        up = pipeline.up()
        for _ in range(3):
            killed = _server_pid(pipeline.spool)
            os.kill(killed, signal.SIGKILL)
            wait_until(
                lambda killed=killed: (
                    up.process.poll() is not None
                    or (_server_pid(pipeline.spool) != killed and _servers_on(pipeline.spool))
                ),
                20,
                "a restart, or up to give up",
            )
        assert up.process.wait(30) == 1
        log_text = up.log()
        assert "pacs-ingest: the embedded Redis server died 3 times within 60 s" in log_text
        children = [pid for _, pid in started_processes(log_text)]
        assert children and not any(alive(pid) for pid in children)
        assert _servers_on(pipeline.spool) == []
    finally:
        _stop(pipeline)


def test_work_reprocess_and_rqinfo_find_the_server_from_the_spool_and_never_show_its_password(
    tmp_path: Path, port: int
) -> None:
    pipeline = Pipeline(tmp_path, "", port)
    elsewhere = tmp_path / "elsewhere"  # reprocess files there: up's workers must be allowed it
    try:
        up = pipeline.up("--workers", "1", "--allow-directory", str(elsewhere))
        home = RedisHome(pipeline.spool)
        url = home.url_file.read_text().strip()
        password = (home.path / "password").read_text().strip()
        connection = Redis.from_url(url)

        imports = make_corpus(tmp_path / "import", 5, size=2048)
        reprocess = run_pacs_ingest(
            "reprocess",
            *("--spool-dir", str(pipeline.spool), "--directory", str(elsewhere)),
            *("--import", str(imports[0].parent)),
        )
        assert reprocess.returncode == 0, reprocess.stderr
        wait_until(lambda: len(archive_files(elsewhere)) == 5, 30, "up's worker to file them")

        work = pipeline.run(
            *("work", "--spool-dir", str(pipeline.spool), "--processes", "1"),
            *("--allow-directory", str(tmp_path)),
            log_name="work.log",
        )
        wait_until(lambda: len(Worker.all(connection=connection)) == 2, 30, "a second worker")
        rqinfo = subprocess.run(
            [str(Path(sys.executable).parent / "rqinfo"), "-u", url, "--only-queues"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert rqinfo.returncode == 0 and "pacs-ingest" in rqinfo.stdout, rqinfo.stderr

        assert connection.config_get("port") == {"port": "0"}  # the socket only, no TCP port
        with pytest.raises((AuthenticationError, ResponseError)):
            Redis(unix_socket_path=str(home.socket)).ping()
        for name in ("url", "password", "server.conf", "pids.json", "lock"):
            assert (home.path / name).stat().st_mode & 0o777 == 0o600, name
        assert home.path.stat().st_mode & 0o777 == 0o700

        helps = [run_pacs_ingest(name, "--help").stdout for name in ("up", "work", "reprocess")]
        assert work.stop() == 0
        assert up.stop() == 0 and _servers_on(pipeline.spool) == []
        shown = [up.log(), work.log(), reprocess.stdout, reprocess.stderr, *helps]
        shown += [p.read_bytes().decode(errors="replace") for p in Path("/proc").glob("*/cmdline")]
        assert not [text for text in shown if password in text]
        assert "--spool-dir" in helps[1] and "embedded server" in helps[1]
    finally:
        _stop(pipeline)


def test_work_without_a_url_or_an_embedded_server_exits_2(tmp_path: Path) -> None:
    neither = run_pacs_ingest("work")
    assert neither.returncode == 2
    assert "give --redis-url (or REDIS_URL), or the --spool-dir of an `up`" in neither.stderr
    empty = run_pacs_ingest("work", "--spool-dir", str(tmp_path))
    assert empty.returncode == 2
    assert f"{tmp_path} has no embedded server" in empty.stderr


@pytest.mark.timeout(120)
def test_a_redis_outage_is_one_warning_per_process_and_no_traceback(
    tmp_path: Path, port: int
) -> None:
    redis = RedisServer(valkey_binary(), tmp_path / "redis", persistent=False)
    pipeline = Pipeline(tmp_path, redis.start(), port)
    sources = make_corpus(tmp_path / "corpus", 6, size=2048)
    try:
        receive = pipeline.receive("--receivers", "1")
        work = pipeline.work("--processes", "2")
        connection = Redis.from_url(redis.url)
        wait_until(lambda: len(Worker.all(connection=connection)) == 2, 30, "two workers")
        redis.stop()
        early = Sender(sources[:3], port, time.monotonic() + 30)
        early.run()
        wait_until(lambda: _events(work.log(), "redis.unreachable") == 2, 30, "their warnings")
        time.sleep(8)  # absence takes a window to see: retries go on meanwhile
        late = Sender(sources[3:], port, time.monotonic() + 30)
        late.run()
        assert len(early.acknowledged | late.acknowledged) == 6
        logs = work.log() + receive.log()
        assert _events(logs, "redis.unreachable") == 2
        assert _events(logs, "queue.enqueue_failed") == 1
        assert _events(logs, "process.exited") == 0
        assert "Traceback" not in logs
        redis.start(port=redis.port)
        wait_until(lambda: _events(work.log(), "redis.reachable") == 2, 30, "their recovery")
        wait_until(lambda: len(archive_files(pipeline.archive)) == 6, 30, "filing after it")
    finally:
        _stop(pipeline)
        redis.stop()


def test_the_command_line_of_the_server_holds_no_password(tmp_path: Path) -> None:
    home = RedisHome(tmp_path)
    server = RedisServer(
        valkey_binary(), home.path, persistent=False, unix_socket=home.socket, password="s3cr3t"
    )
    server.start()
    try:
        assert b"s3cr3t" not in Path(f"/proc/{server.pid}/cmdline").read_bytes()
    finally:
        server.stop()


def test_a_spool_too_deep_for_a_unix_socket_gets_its_socket_in_a_private_temporary_folder(
    tmp_path: Path, port: int
) -> None:
    spool = tmp_path / ("s" * 120)
    up = subprocess.Popen(
        [
            *(sys.executable, "-m", "pacs_ingest", "up", "-b", f"INGEST:{port}"),
            *("--directory", str(tmp_path / "a"), "--spool-dir", str(spool)),
        ],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    try:
        url_file = spool / "redis" / "url"
        wait_until(url_file.exists, 30, "the URL file")
        url = url_file.read_text().strip()
        socket_file = Path(url.split("@", 1)[1].split("?", 1)[0])
        assert not socket_file.is_relative_to(spool)
        assert len(os.fsencode(socket_file)) <= 107
        assert oct(socket_file.parent.stat().st_mode & 0o777) == "0o700"
        wait_until(lambda: _answers(url), 30, "the server to answer on its socket")
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
    assert _servers_on(spool) == []


def _answers(url: str) -> bool:
    try:
        return bool(Redis.from_url(url, socket_timeout=1).ping())
    except RedisError:
        return False


def test_the_password_is_kept_across_starts_and_never_empty(tmp_path: Path) -> None:
    home = RedisHome(tmp_path)
    home.path.mkdir(mode=0o700)
    first = home.password()
    assert len(first) >= 32 and home.password() == first
    (home.path / "password").write_text("\n")
    renewed = home.password()
    assert renewed and renewed != first


def test_an_explicit_url_wins_over_the_spools_embedded_server(tmp_path: Path) -> None:
    home = RedisHome(tmp_path)
    home.path.mkdir(mode=0o700)
    home.publish("unix://:pw@/srv/sock?db=0")
    assert find_redis_url(None, str(tmp_path)) == "unix://:pw@/srv/sock?db=0"
    assert find_redis_url("redis://db:6379/0", str(tmp_path)) == "redis://db:6379/0"
