"""Migration-scale backlogs: little Redis memory per waiting object, and every object filed exactly
once when Redis is flushed mid-drain and a worker is SIGKILLed."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from benchmarks.backlog import build_backlog
from benchmarks.corpus import make_corpus
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.recovery import sweep
from tests.conftest import Pipeline
from tests.helpers import archive_files, started_processes, wait_until, waiting_objects

MEMORY_BOUND_B = 300
STORESCU_OBJECTS = 2000
STORESCU_SENDERS = 4
BACKLOG = 100_000


def _used_memory(connection: Redis) -> int:
    return int(connection.info("memory")["used_memory"])


@pytest.fixture
def tmpfs_dir() -> Iterator[Path]:
    """A folder on tmpfs: 100,000 files filed with a directory fsync each would take minutes on
    this machine's disk, and what is measured here is the queue, not the disk."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    path = Path(tempfile.mkdtemp(prefix="pacs-backlog-test-", dir=base))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _storescu(files: list[Path], port: int) -> subprocess.Popen:
    return subprocess.Popen(
        ["storescu", "-aec", "INGEST", "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TCP_NODELAY": "1"},
    )


@pytest.mark.timeout(240)
def test_objects_from_storescu_wait_in_at_most_300_bytes_of_redis_each(
    pipeline: Pipeline,
) -> None:
    sources = make_corpus(pipeline.tmp_path / "corpus", STORESCU_OBJECTS, size=1024)
    pipeline.receive("--receivers", "2")
    connection = Redis.from_url(pipeline.redis_url)
    before = _used_memory(connection)
    senders = [
        _storescu(sources[i::STORESCU_SENDERS], pipeline.port) for i in range(STORESCU_SENDERS)
    ]
    for sender in senders:
        _, errors = sender.communicate(timeout=200)
        assert sender.returncode == 0, errors.decode()
    assert len(waiting_objects(pipeline.spool)) == STORESCU_OBJECTS
    lanes = [p.name for p in (pipeline.spool / "ready").iterdir()]
    # Stores are answered before their refs are pushed (at most every 25 ms): the last push
    # may follow the last answer.
    wait_until(
        lambda: connection.llen(names_key(lanes[0])) >= STORESCU_OBJECTS, 10, "the last push"
    )
    assert connection.llen(names_key(lanes[0])) == STORESCU_OBJECTS
    per_object = (_used_memory(connection) - before) / STORESCU_OBJECTS
    print(f"\nRedis memory per waiting object (storescu): {per_object:.1f} B")
    assert per_object <= MEMORY_BOUND_B


def _worker_pids(log_text: str) -> list[int]:
    return [pid for name, pid in started_processes(log_text) if name.startswith("worker-")]


@pytest.mark.timeout(180)
def test_a_backlog_is_filed_exactly_once_after_a_flush_and_a_killed_worker(
    tmpfs_dir: Path, redis_url: str, port: int
) -> None:
    pipeline = Pipeline(tmpfs_dir, redis_url, port)
    try:
        spool = Spool(pipeline.spool)
        spool.create()
        pipeline.archive.mkdir()
        lane = open_lane(spool, Filing(str(pipeline.archive), None, 3, 50))
        build_backlog(spool, lane, BACKLOG, per_bucket=5000, now=time.time())
        connection = Redis.from_url(redis_url)
        before = _used_memory(connection)
        # Redis knows nothing of the backlog, as after a flush: one recovery pass queues it all.
        result = sweep(spool, ingest_queue(connection), now=time.time(), holder="test")
        assert result is not None and result.requeued == BACKLOG
        assert connection.llen(names_key(lane)) == BACKLOG
        per_object = (_used_memory(connection) - before) / BACKLOG
        print(f"\nRedis memory per waiting object (backlog of {BACKLOG}): {per_object:.1f} B")
        assert per_object <= MEMORY_BOUND_B

        pipeline.receive(sweep_interval=1)  # recovery passes every second
        work = pipeline.work("--processes", "2")
        wait_until(lambda: len(waiting_objects(pipeline.spool)) < BACKLOG * 3 // 4, 60, "drain")
        connection.flushall()
        os.kill(_worker_pids(work.log())[0], signal.SIGKILL)
        wait_until(lambda: not waiting_objects(pipeline.spool), 120, "the backlog filed")

        filed = archive_files(pipeline.archive)
        names = {path.name for path in filed}
        assert len(filed) == BACKLOG
        assert len(names) == BACKLOG  # none filed twice (keep-both would add a suffixed copy)
        assert not any((pipeline.spool / "failed").iterdir())
        assert len(_worker_pids(work.log())) == 3  # the killed one was replaced
    finally:
        pipeline.stop_all()
