"""A lane has one drain at a time: the drain mark (shared.lane) says whether its drain waits in
rq's queue or runs, pushes enqueue nothing while it does, and a drain that falls behind asks for
helpers one at a time."""

from redis import Redis
from rq import Queue

from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.keys import drain_helper_key, drain_key, worker_lease_key
from pacs_ingest.shared.lane import (
    ask_for_helper,
    end_drain,
    ensure_drain,
    forget_lost_drain,
    push,
    start_drain,
)
from pacs_ingest.shared.queue import ingest_queue

LANE = "0123456789ab"
JOB = DrainJob("/spool", LANE)


def _take(rq_queue: Queue) -> str:
    """What a worker does as it takes the next job: the job's id, off the queue."""
    (job_id,) = rq_queue.job_ids
    rq_queue.remove(job_id)
    return job_id


def test_pushes_while_the_lanes_drain_runs_enqueue_nothing_and_one_after_it(
    redis_url: str,
) -> None:
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    push(rq_queue, JOB, ["1/a"], now=1.0)
    push(rq_queue, JOB, ["1/b"], now=1.0)
    assert rq_queue.count == 1  # one drain waits
    job_id = _take(rq_queue)
    assert start_drain(connection, LANE, job_id, "w1")
    assert connection.get(drain_key(LANE)) == b"running:w1"
    push(rq_queue, JOB, ["1/c"], now=1.0)
    assert rq_queue.count == 0  # it runs: it takes what comes
    end_drain(connection, LANE, "w1")
    assert not connection.exists(drain_key(LANE))
    push(rq_queue, JOB, ["1/d"], now=1.0)
    assert rq_queue.count == 1


def test_a_drain_whose_mark_was_replaced_leaves_the_new_mark_alone(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    assert ensure_drain(rq_queue, JOB)
    job_id = _take(rq_queue)
    assert start_drain(connection, LANE, job_id, "w1")
    connection.delete(drain_key(LANE))  # expired, say, during a batch of huge objects
    assert ensure_drain(rq_queue, JOB)
    end_drain(connection, LANE, "w1")
    assert connection.get(drain_key(LANE)) == rq_queue.job_ids[0].encode()


def test_helpers_are_asked_for_one_at_a_time_and_are_not_the_lanes_drain(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    assert ensure_drain(rq_queue, JOB)
    assert start_drain(connection, LANE, _take(rq_queue), "w1")
    assert ask_for_helper(rq_queue, JOB)
    assert not ask_for_helper(rq_queue, JOB)  # one waits already
    assert rq_queue.count == 1
    helper = _take(rq_queue)
    assert not start_drain(connection, LANE, helper, "w2")
    assert connection.get(drain_key(LANE)) == b"running:w1"
    assert not connection.exists(drain_helper_key(LANE))
    assert ask_for_helper(rq_queue, JOB)  # the helper started: the next may be asked for


def test_a_running_drains_mark_is_lost_only_with_its_workers_lease(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    assert ensure_drain(rq_queue, JOB)
    assert not forget_lost_drain(rq_queue, LANE)  # it waits in the queue
    assert start_drain(connection, LANE, _take(rq_queue), "w1")
    connection.set(worker_lease_key("w1"), 1, ex=60)
    assert not forget_lost_drain(rq_queue, LANE)  # it runs on a live worker
    connection.delete(worker_lease_key("w1"))  # the worker was killed: its lease expired
    assert forget_lost_drain(rq_queue, LANE)
    assert ensure_drain(rq_queue, JOB)
