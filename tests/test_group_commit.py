"""The receiver's group commit against a real Redis: the stores that become durable together
share one fsync of their ready/ bucket and one push, and when Redis is away they stay durable in
ready/, unqueued, and are pushed once it is back."""

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from pacs_ingest.embedded_redis import RedisServer, server_binary
from pacs_ingest.receiver.commit import Commit
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import lane_id
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import BUCKET_S, Spool, bucket_at
from tests.commit_burst import commit_all, committer, part
from tests.helpers import ROOT, wait_until, waiting_objects

SLOW_FLUSH_S = 1.5


def _burst_under_strace(
    spool: Path, redis_url: str, count: int, trace: Path, *how: str
) -> list[str]:
    """Run tests.commit_burst with every fsync of its ready/ bucket taking SLOW_FLUSH_S longer;
    the fsync lines of that bucket."""
    # All in one bucket: start early in one, so the stores are renamed long before it ends.
    wait_until(lambda: time.time() % BUCKET_S < 2, BUCKET_S, "the start of a bucket")
    lane = lane_id(str(spool), Filing(str(spool.parent / "archive"), None, 0, 0))
    bucket = spool / "ready" / lane / bucket_at(time.time())
    subprocess.run(
        [
            *("strace", "-f", "-y", "-qq", "-o", str(trace), "-P", str(bucket)),
            *("-e", "trace=fsync", "-e", f"inject=fsync:delay_enter={int(SLOW_FLUSH_S * 1e6)}"),
            *(sys.executable, "-m", "tests.commit_burst", str(spool), redis_url, str(count), *how),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    return [line for line in trace.read_text().splitlines() if re.search(r"fsync\(\d+<", line)]


def _pushes(connection: Redis) -> int:
    """The lane's pushes (shared.lane.push: one RPUSH per group), without the RPUSH of each drain
    job enqueued (no worker runs here: they are all still in rq's queue)."""
    rpushes = connection.info("commandstats").get("cmdstat_rpush", {}).get("calls", 0)
    return rpushes - ingest_queue(connection).count


@pytest.mark.parametrize("count", [1, 20])
def test_stores_durable_together_share_one_bucket_flush_and_one_push(
    tmp_path: Path, redis_url: str, count: int
) -> None:
    connection = Redis.from_url(redis_url)
    connection.config_resetstat()
    spool = tmp_path / "spool"
    flushes = _burst_under_strace(spool, redis_url, count, tmp_path / "strace.log")
    # The first store's flush is slow: every other store is renamed meanwhile and waits for the
    # next flush, which one thread makes for all of them.
    assert len(flushes) == min(count, 2), flushes
    assert _pushes(connection) == len(flushes)
    (lane,) = Spool(spool).lanes()
    queued = {ref.decode() for ref in connection.lrange(names_key(lane), 0, -1)}
    on_disk = {f"{p.parent.name}/{p.stem}" for p in waiting_objects(spool)}
    assert len(on_disk) == count
    assert queued == on_disk


def test_stores_of_one_turn_of_the_loop_share_the_first_flush(
    tmp_path: Path, redis_url: str
) -> None:
    connection = Redis.from_url(redis_url)
    connection.config_resetstat()
    spool = tmp_path / "spool"
    flushes = _burst_under_strace(spool, redis_url, 20, tmp_path / "strace.log", "one-turn")
    assert len(flushes) == 1, flushes  # one thread made all 20 durable, then flushed once
    assert _pushes(connection) == 1
    assert len(waiting_objects(spool)) == 20


@pytest.fixture
def stopped_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A real server that has been started once (its port known) and is now stopped."""
    server = RedisServer(server_binary(), tmp_path / "redis", persistent=False)
    server.start()
    server.stop()
    yield server
    server.stop()


@pytest.mark.parametrize("wait_for_queue", [False, True])
def test_with_redis_down_stores_are_durable_unqueued_and_pushed_once_it_is_back(
    tmp_path: Path, stopped_redis: RedisServer, wait_for_queue: bool
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    group = committer(spool, stopped_redis.url, wait_for_queue=wait_for_queue)
    try:
        commits = asyncio.run(commit_all(group, [part(spool, i) for i in range(5)]))
        # Answered as stored; with --require-queue, told that the push did not happen.
        assert commits == [Commit(True, False if wait_for_queue else None)] * 5
        ready = waiting_objects(spool.root)
        assert len(ready) == 5
        (lane,) = spool.lanes()
        # Marked for recovery, should this process die; without --require-queue the answer
        # comes before the push is tried.
        wait_until(
            lambda: all(spool.unqueued_marked(lane, b) for b in spool.buckets(lane)),
            10,
            "the bucket marked unqueued",
        )
        assert spool.writer_marks(lane)  # it still owes these pushes

        stopped_redis.start(stopped_redis.port)  # back, and empty
        connection = Redis.from_url(stopped_redis.url)
        assert connection.llen(names_key(lane)) == 0

        def pushed() -> bool:
            group.retry_unqueued()  # as the receiver's retry tick does
            return connection.llen(names_key(lane)) == 5

        wait_until(pushed, 10, "the kept refs pushed")
        queued = [ref.decode() for ref in connection.lrange(names_key(lane), 0, -1)]
        assert sorted(queued) == sorted(f"{p.parent.name}/{p.stem}" for p in ready)
    finally:
        group.close()
