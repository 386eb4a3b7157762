"""Poison pills: an object whose filing never finishes ends in failed/ after --max-attempts,
counted across worker crashes and the loss of Redis's data; the other objects are filed."""

import json
import os
import random
import signal
import stat
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from benchmarks.corpus import make_corpus
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.keys import attempts_key, names_key
from pacs_ingest.shared.lane import ensure_drain, open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool, bucket_at
from pacs_ingest.workers.attempts import Attempts
from pacs_ingest.workers.ingest import file_counted
from pacs_ingest.workers.place import Settlement
from pacs_ingest.workers.recovery import sweep
from tests.conftest import Pipeline
from tests.helpers import all_filed, started_processes, store_all, wait_until

MAX_ATTEMPTS = 3


def _marked_attempts(spool: Spool, name: str) -> int:
    """Attempts begun at `name`, as its marks say: the record's count, else 1 for the link."""
    try:
        return json.loads(spool.attempt_path(name).read_text())["attempts"]
    except FileNotFoundError:
        return 1 if spool.attempt_link_path(name).exists() else 0
    except ValueError:  # being written
        return 0


def _worker_pid(log_text: str) -> int:
    return [pid for name, pid in started_processes(log_text) if name.startswith("worker")][-1]


def test_an_object_whose_filing_kills_the_worker_ends_in_failed_after_max_attempts(
    pipeline: Pipeline,
) -> None:
    redis = Redis.from_url(pipeline.redis_url)
    pipeline.receive("--receivers", "1", sweep_interval=1)  # the dead worker's claims
    work = pipeline.work("--processes", "1", "--max-attempts", str(MAX_ATTEMPTS))
    objects = make_corpus(pipeline.tmp_path / "corpus", 4)
    store_all(objects[:2], pipeline.port)
    wait_until(
        lambda: all_filed(pipeline.archive, pipeline.spool, 2), 60, "the first objects filed"
    )

    # A FIFO in ready/ nobody writes to: a worker opening it to read the header blocks forever,
    # as on a hung network file system. In a closed bucket of the receivers' lane, queued as a
    # receiver queues what it stores; recovery queues it again once Redis lost its data.
    spool = Spool(pipeline.spool)
    (lane,) = spool.lanes()
    bucket, poison = bucket_at(time.time() - 60), uuid.uuid4().hex
    ref = f"{lane}/{bucket}/{poison}"
    spool.ready_path(ref).parent.mkdir(exist_ok=True)
    os.mkfifo(spool.ready_path(ref))
    redis.rpush(names_key(lane), f"{bucket}/{poison}")
    ensure_drain(ingest_queue(redis), DrainJob(str(pipeline.spool), lane))
    for attempt in range(1, MAX_ATTEMPTS + 1):
        wait_until(lambda n=attempt: _marked_attempts(spool, ref) == n, 60, f"attempt {attempt}")
        # Redis counts the attempts known to have failed: those cut short before this one.
        assert int(redis.hget(attempts_key(str(pipeline.spool)), ref) or 0) == attempt - 1
        os.kill(_worker_pid(work.log()), signal.SIGKILL)
        if attempt > 1:  # the count must survive Redis losing everything (the marks keep it)
            redis.flushall()

    reason_file = pipeline.spool / "failed" / f"{poison}.json"
    wait_until(reason_file.exists, 60, "the poison object in failed/")
    reason = json.loads(reason_file.read_text())
    assert reason["reason"] == "too many attempts"
    assert reason["attempts"] == MAX_ATTEMPTS
    assert f"attempt {MAX_ATTEMPTS} " in reason["error"]
    assert "did not finish" in reason["error"]
    assert stat.S_ISFIFO((pipeline.spool / "failed" / f"{poison}.dcm").stat().st_mode)
    assert spool.attempt_marks() == []
    # Redis forgets the count as the drain settles its batch, a moment later.
    wait_until(
        lambda: redis.hget(attempts_key(str(pipeline.spool)), ref) is None,
        10,
        "the attempts count forgotten",
    )

    store_all(objects[2:], pipeline.port)
    wait_until(
        lambda: all_filed(pipeline.archive, pipeline.spool, 4), 60, "the later objects filed"
    )
    assert list((pipeline.spool / "attempts").iterdir()) == []
    assert sorted(p.name for p in (pipeline.spool / "failed").iterdir()) == sorted(
        [f"{poison}.dcm", f"{poison}.json"]
    )


def test_a_storage_outage_is_not_counted_as_an_attempt(tmp_path: Path, redis_url: str) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    spool.ready_path("x").write_bytes(b"")
    connection = Redis.from_url(redis_url)
    attempts = Attempts(connection, spool, limit=2)
    first = attempts.begin("x")
    attempts.take_back(first)
    assert attempts.begin("x").number == 1
    attempts.failed(attempts.begin("x"), RuntimeError("boom"))
    third = attempts.begin("x")
    assert (third.number, third.previous_error) == (3, "RuntimeError: boom")
    assert int(connection.hget(attempts_key(str(spool)), "x")) == 2
    attempts.take_back(third)  # an outage during the third attempt: as if it never began
    third = attempts.begin("x")
    assert (third.number, third.previous_error) == (3, "RuntimeError: boom")
    assert int(connection.hget(attempts_key(str(spool)), "x")) == 2
    assert attempts.exhausted(third)
    attempts.forget(["x"])
    assert not spool.attempt_path("x").exists()
    assert attempts.begin("x").number == 1


def test_the_sweep_removes_the_attempts_of_objects_that_left_ready_and_keeps_the_rest(
    tmp_path: Path, redis_url: str
) -> None:
    connection = Redis.from_url(redis_url)
    spool = Spool(tmp_path / "spool")
    spool.create()
    filing = Filing(str(tmp_path / "archive"), None, rename_retries=0, rename_retry_jitter=0)
    lane = open_lane(spool, filing)
    bucket = bucket_at(time.time() - 60)
    refs = {name: f"{lane}/{bucket}/{uuid.uuid4().hex}" for name in ("filed", "waiting")}
    spool.ready_path(refs["filed"]).parent.mkdir()
    attempts = Attempts(connection, spool, limit=3)
    for ref in refs.values():
        spool.ready_path(ref).write_bytes(b"")
        attempts.failed(attempts.begin(ref), RuntimeError("boom"))  # counted in both places
    spool.ready_path(refs["filed"]).unlink()  # filed by a worker killed before it forgot them
    sweep(spool, ingest_queue(connection), now=time.time(), holder="test")
    assert {ref for ref, _ in spool.attempt_marks()} == {refs["waiting"]}
    assert connection.hkeys(attempts_key(str(spool))) == [refs["waiting"].encode()]


@pytest.mark.timeout(60, method="thread")  # rq's death penalty takes SIGALRM for itself
def test_an_object_that_makes_its_job_time_out_counts_and_ends_in_failed(
    tmp_path: Path, redis_url: str
) -> None:
    connection = Redis.from_url(redis_url)
    spool = Spool(tmp_path / "spool")
    spool.create()
    (tmp_path / "archive").mkdir()
    os.mkfifo(spool.ready_path("stuck"))  # opening it to read the header never returns
    filing = Filing(str(tmp_path / "archive"), None, rename_retries=0, rename_retry_jitter=0)
    attempts = Attempts(connection, spool, limit=2)
    for attempt in (1, 2):
        with (
            pytest.raises(JobTimeoutException),
            UnixSignalDeathPenalty(1, JobTimeoutException),
        ):
            file_counted(spool, "stuck", filing, random.Random(), attempts, Settlement())
        if attempt == 1:
            mark = json.loads(spool.attempt_path("stuck").read_text())
            assert mark["error"].startswith("JobTimeoutException: Task exceeded maximum timeout")
            assert int(connection.hget(attempts_key(str(spool)), "stuck")) == 1
            assert stat.S_ISFIFO(spool.ready_path("stuck").stat().st_mode)
    reason = json.loads((spool.failed / "stuck.json").read_text())
    assert (reason["reason"], reason["attempts"]) == ("too many attempts", 2)
    assert reason["error"].startswith("JobTimeoutException: Task exceeded maximum timeout")
    assert not spool.ready_path("stuck").exists()


def test_attempts_whose_objects_could_not_be_made_durable_are_taken_back(
    tmp_path: Path, redis_url: str
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    for name in ("placed", "other"):
        spool.ready_path(name).write_bytes(b"")
    attempts = Attempts(Redis.from_url(redis_url), spool, limit=3)
    attempts.begin("placed")
    attempts.begin("other")
    attempts.take_back_all(["placed"])  # the round's fsync failed: the storage, not the object
    assert attempts.begin("placed").number == 1
    assert attempts.begin("other").number == 2  # still open: as if cut short
