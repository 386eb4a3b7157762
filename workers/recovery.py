"""The recovery sweep: enqueue again every object in ready/ that no live job covers.

ready/ is the truth about unfinished work; Redis only says who is on it. An object needs a new
job when nothing tracks it (stored while Redis was away, or Redis lost its data) or when the job
tracking it is over or dead (finished or failed without filing it, or started by a worker whose
lease expired). Objects younger than a few seconds are left alone: their receiver may not have
enqueued them yet. The sweep also removes incoming/ leftovers of receiver processes that died,
recounts the spool from its listing (shared.spool_counts), which it makes anyway, and drops the
attempt counts and marks (workers.attempts) of objects no longer in ready/.
"""

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from redis import Redis
from rq import Queue, get_current_job
from rq.job import Job

from shared import log
from shared.jobs import (
    Filing,
    SweepJob,
    enqueue_names,
    sweep_pending_key,
    tracked_key,
    worker_lease_key,
)
from shared.queue import ingest_queue
from shared.spool import Spool
from shared.spool_counts import recount
from workers import policy
from workers.attempts import attempts_key
from workers.backoff import on_hold

# An object untracked for this long after its last write was not going to be enqueued by its
# receiver any more (the receiver enqueues right after the write, or failed to).
UNTRACKED_GRACE_S = 10.0


@dataclass(frozen=True, slots=True)
class SweepResult:
    ready: int
    requeued: int
    forgotten: int  # tracking entries of objects no longer in ready/
    removed_incoming: int


def _live_jobs(rq_queue: Queue, job_ids: Iterable[str]) -> set[str]:
    """The ids among `job_ids` of jobs that wait in the queue, or run on a live worker.

    A job's rq status alone is no proof: a worker killed right after popping a job leaves it
    "queued" but in no queue, and one killed while running leaves it "started" for minutes.
    """
    connection = rq_queue.connection
    waiting = {job_id.decode() for job_id in connection.lrange(rq_queue.key, 0, -1)}
    running = [job_id for job_id in job_ids if job_id not in waiting]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in running:
            pipe.hmget(Job.key_for(job_id), "status", "worker_name")
        states = pipe.execute()
    with connection.pipeline(transaction=False) as pipe:
        for status, worker in states:
            pipe.exists(
                worker_lease_key(worker.decode())
                if status == b"started" and worker
                else "pacs-ingest:no-such-key"
            )
        alive = pipe.execute()
    return waiting.intersection(job_ids) | {
        job_id for job_id, live in zip(running, alive, strict=True) if live
    }


Attempted = tuple[list[str], list[tuple[str, Path]]]


def _attempted(spool: Spool, connection: Redis) -> Attempted:
    """(names counted in Redis, marks in the spool) of objects with attempts."""
    counted = [name.decode() for name in connection.hkeys(attempts_key(str(spool)))]
    return counted, spool.attempt_marks()


def _forget_attempts(spool: Spool, connection: Redis, attempted: Attempted, ready: dict) -> None:
    """Drop the attempt counts and marks a crash left behind for objects that left ready/.

    `attempted` must be read before `ready`: a worker marks only objects already in ready/, so
    a name marked then and missing from ready/ after really has left it.
    """
    counted, marked = attempted
    stale = [name for name in counted if name not in ready]
    if stale:
        connection.hdel(attempts_key(str(spool)), *stale)
    for name, path in marked:
        if name not in ready:
            path.unlink(missing_ok=True)


def sweep(spool: Spool, filing: Filing, rq_queue: Queue, *, now: float) -> SweepResult:
    """One sweep of `spool`; `now` is a time.time() reading."""
    connection = rq_queue.connection
    removed = spool.remove_dead_incoming(now=now)
    # Read the tracking before listing ready/: an entry whose object is then missing from ready/
    # really has left it (objects only enter ready/ before they are tracked).
    tracked = {
        k.decode(): v.decode() for k, v in connection.hgetall(tracked_key(str(spool))).items()
    }
    attempted = _attempted(spool, connection)
    ready = {item.name: item for item in spool.ready_objects()}
    forgotten = [name for name in tracked if name not in ready]
    if forgotten:
        connection.hdel(tracked_key(str(spool)), *forgotten)
    recount(connection, str(spool), ready.values(), spool.failed_totals(), listed_at=now)
    _forget_attempts(spool, connection, attempted, ready)
    if on_hold(connection, str(spool)):
        return SweepResult(len(ready), 0, len(forgotten), len(removed))
    live = _live_jobs(rq_queue, {tracked[n] for n in ready if n in tracked})
    orphans = [
        name
        for name, item in sorted(ready.items(), key=lambda entry: entry[1].mtime)
        if (name in tracked and tracked[name] not in live)
        or (name not in tracked and now - item.mtime > UNTRACKED_GRACE_S)
    ]
    enqueue_names(rq_queue, str(spool), filing, orphans)
    result = SweepResult(len(ready), len(orphans), len(forgotten), len(removed))
    if orphans or forgotten or removed:
        log.event("sweep.done", spool=str(spool), **asdict(result))
    return result


def sweep_job(payload: dict) -> None:
    """rq entry point (shared.jobs.SWEEP_FUNCTION)."""
    job = SweepJob.decode(payload)
    rq_job = get_current_job()
    rq_job.connection.delete(sweep_pending_key(job.spool))
    sweep(
        Spool(job.spool, policy.current().modes),
        job.filing,
        ingest_queue(rq_job.connection, rq_job.origin),
        now=time.time(),
    )
