"""Recovery passes against a real Redis: cost independent of what is already queued, every
object queued again once after a flush, unqueued buckets looked into, dead workers' claims
given back, one pass at a time, and a lost drain replaced."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from benchmarks.backlog import build_backlog, queued_refs
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import (
    claimers_key,
    claims_key,
    drain_key,
    names_key,
    sweep_lock_key,
    worker_lease_key,
)
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool, bucket_at
from pacs_ingest.workers.claims import Claims
from pacs_ingest.workers.recovery import SweepResult, sweep


def _spool(tmp_path: Path, count: int) -> tuple[Spool, str]:
    spool = Spool(tmp_path / "spool")
    spool.create()
    lane = open_lane(spool, Filing(str(tmp_path / "archive"), None, 0, 0))
    build_backlog(spool, lane, count, per_bucket=500, now=time.time())
    return spool, lane


def _pass(spool: Spool, connection: Redis) -> SweepResult:
    result = sweep(spool, ingest_queue(connection), now=time.time(), holder="test")
    assert result is not None
    return result


def test_a_pass_looks_into_no_bucket_once_everything_is_queued(
    tmp_path: Path, redis_url: str
) -> None:
    spool, lane = _spool(tmp_path, 2000)
    connection = Redis.from_url(redis_url)
    first = _pass(spool, connection)
    assert (first.buckets_listed, first.requeued) == (4, 2000)
    second = _pass(spool, connection)
    assert (second.buckets_listed, second.requeued) == (0, 0)
    assert connection.llen(names_key(lane)) == 2000


def test_after_a_flush_one_pass_queues_every_object_once(tmp_path: Path, redis_url: str) -> None:
    spool, lane = _spool(tmp_path, 2000)
    connection = Redis.from_url(redis_url)
    _pass(spool, connection)
    connection.flushall()
    assert _pass(spool, connection).requeued == 2000
    assert _pass(spool, connection).requeued == 0
    refs = list(queued_refs(connection, lane))
    assert len(refs) == len(set(refs)) == 2000


def test_a_bucket_a_receiver_could_not_queue_is_looked_into(tmp_path: Path, redis_url: str) -> None:
    spool, lane = _spool(tmp_path, 1000)
    connection = Redis.from_url(redis_url)
    _pass(spool, connection)
    bucket = spool.buckets(lane)[0]
    spool.mark_unqueued([f"{lane}/{bucket}/any"])
    connection.hdel(f"pacs-ingest:lane:{lane}:verified", bucket)  # it was never verified
    connection.delete(names_key(lane))
    connection.set("pacs-ingest:epoch", repr(time.time() - 86400))  # pushed after the epoch
    result = _pass(spool, connection)
    assert (result.buckets_listed, result.requeued) == (1, 500)
    assert not spool.unqueued_marked(lane, bucket)


def test_an_open_bucket_is_left_to_its_receivers(tmp_path: Path, redis_url: str) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    lane = open_lane(spool, Filing(str(tmp_path / "archive"), None, 0, 0))
    (spool.ready / lane / bucket_at(time.time())).mkdir()
    (spool.ready / lane / bucket_at(time.time()) / "young.dcm").write_bytes(b"")
    assert _pass(spool, Redis.from_url(redis_url)).requeued == 0


def test_a_dead_workers_claims_go_back_to_the_lane(tmp_path: Path, redis_url: str) -> None:
    spool, lane = _spool(tmp_path, 500)
    connection = Redis.from_url(redis_url)
    _pass(spool, connection)
    claimed = Claims(connection, lane, "dead-worker").take(64)  # it has no lease
    assert connection.llen(names_key(lane)) == 500 - 64
    result = _pass(spool, connection)
    assert result.reclaimed == 64
    assert connection.lrange(names_key(lane), 0, 63) == [ref.encode() for ref in claimed]
    assert not connection.exists(claims_key(lane, "dead-worker"))
    assert not connection.sismember(claimers_key(lane), "dead-worker")


def test_a_bucket_whose_writer_died_owing_pushes_is_looked_into(
    tmp_path: Path, redis_url: str
) -> None:
    spool, lane = _spool(tmp_path, 1000)
    connection = Redis.from_url(redis_url)
    connection.set("pacs-ingest:epoch", repr(time.time() - 86400))  # every bucket is trusted
    first, second = spool.buckets(lane)
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = os.getpid()
    (spool.ready / lane / "writing").mkdir()
    for bucket, pid in ((first, dead.pid), (second, alive)):
        (spool.ready / lane / "writing" / f"{bucket}.{socket.gethostname()}.{pid}").touch()
    result = _pass(spool, connection)
    assert (result.buckets_listed, result.requeued) == (1, 500)  # the live writer's is left
    assert spool.writer_marks(lane) == {second: [f"{second}.{socket.gethostname()}.{alive}"]}


_WRITER = """
import os, sys, time
from pacs_ingest.shared.spool import Spool, new_name
spool, lane, count, settle = Spool(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
refs = []
for _ in range(count):
    name = new_name()
    spool.part_path(name).write_bytes(b"object")
    refs.append(spool.make_ready(name, lane, now=time.time() - 3600))
spool.sync_ready(refs)
if settle == "settle":
    spool.settled(refs, now=None)
os._exit(0)  # as if killed: nothing else runs
"""


def _writer(spool: Spool, lane: str, count: int, settle: str) -> None:
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(spool.root), lane, str(count), settle],
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )


def test_objects_a_dead_writer_never_pushed_are_queued_and_a_settled_writers_are_trusted(
    tmp_path: Path, redis_url: str
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    lane = open_lane(spool, Filing(str(tmp_path / "archive"), None, 0, 0))
    connection = Redis.from_url(redis_url)
    connection.set("pacs-ingest:epoch", repr(time.time() - 86400))  # buckets after it: trusted
    _writer(spool, lane, 20, "settle")
    assert _pass(spool, connection).requeued == 0  # it said it pushed them all
    (bucket,) = spool.buckets(lane)
    connection.hdel(f"pacs-ingest:lane:{lane}:verified", bucket)
    _writer(spool, lane, 30, "die")
    result = _pass(spool, connection)
    assert (result.buckets_listed, result.requeued) == (1, 50)
    assert spool.writer_marks(lane) == {}


def test_a_pass_waits_for_a_live_workers_pass_and_takes_over_from_a_dead_ones(
    tmp_path: Path, redis_url: str
) -> None:
    spool, lane = _spool(tmp_path, 500)
    connection = Redis.from_url(redis_url)
    lock = sweep_lock_key(str(spool))
    connection.set(lock, "busy-worker")
    connection.set(worker_lease_key("busy-worker"), 1, ex=60)
    assert sweep(spool, ingest_queue(connection), now=time.time(), holder="test") is None
    assert connection.llen(names_key(lane)) == 0
    connection.delete(worker_lease_key("busy-worker"))  # killed mid-pass: its lease expired
    assert _pass(spool, connection).requeued == 500
    assert not connection.exists(lock)


def test_a_pass_replaces_a_drain_lost_with_its_worker(tmp_path: Path, redis_url: str) -> None:
    spool, lane = _spool(tmp_path, 500)
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    _pass(spool, connection)
    rq_queue.empty()  # the drain job went with the worker that took it...
    connection.set(drain_key(lane), "lost-job-id")  # ...and its mark stayed
    _pass(spool, connection)
    assert rq_queue.count == 1
    assert connection.get(drain_key(lane)) == rq_queue.job_ids[0].encode()
