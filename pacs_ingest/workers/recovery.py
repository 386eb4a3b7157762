"""Recovery: queue again every object in ready/ that has no queue entry, at a cost per pass that
does not grow with the number of objects already queued.

ready/ is the truth about unfinished work; Redis only says what is queued. Objects are in ready/
by lane and by time bucket (shared.spool). A bucket gets a verified mark, for the current epoch
(shared.lane: since when Redis has kept its data), once every object in it is known to have a
queue entry; a pass lists only the buckets without such a mark, so with everything queued it
reads one directory per lane and one Redis hash, whatever the backlog. A bucket without a mark
is closed (no object can enter it any more, and the grace for its receivers' pushes has passed)
and then:

- a live process that put objects in it has not queued them all yet (its writer mark is there):
  it is left for a later pass;
- it began after the epoch did, no process that wrote into it died owing a push, and no
  receiver marked it as holding unqueued objects: whoever put each object in it pushed its ref
  in this epoch, so it is marked verified unread;
- otherwise (Redis lost its data since, a writer died, or a receiver could not push): every
  object in it is queued again, once, and the bucket marked.

A pass also gives the claims of dead workers back to their lanes (workers.claims), asks for a
drain where refs wait, removes empty closed buckets, and the incoming/ leftovers of receiver
processes that died. It keeps the spool's counts (shared.spool_counts) true where it looks:
a bucket it lists is recounted from the listing, a bucket it removes loses its counts, and
failed/ is recounted on every pass. It drops the attempt counts and marks (workers.attempts)
a crash left behind for objects no longer in ready/. One pass per spool runs at a time.
"""

import time
from dataclasses import asdict, dataclass

from redis import Redis
from rq import Queue, get_current_job

from pacs_ingest.shared import log
from pacs_ingest.shared.jobs import DrainJob, SweepJob
from pacs_ingest.shared.keys import (
    attempts_key,
    names_key,
    sweep_lock_key,
    sweep_pending_key,
    verified_key,
    worker_lease_key,
)
from pacs_ingest.shared.lane import current_epoch, ensure_drain, forget_lost_drain, push
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool, bucket_closed, bucket_start
from pacs_ingest.shared.spool_counts import forget_bucket, recount_bucket, recount_failed
from pacs_ingest.workers import policy
from pacs_ingest.workers.backoff import on_hold
from pacs_ingest.workers.claims import reclaim_dead

# A receiver pushes an object's ref right after its bucket's fsync; this long after a bucket
# closed, every ref its receivers were going to push has been pushed (or its bucket marked).
UNQUEUED_GRACE_S = 10.0
_LOCK_TTL_S = 600


@dataclass(slots=True)
class SweepResult:
    lanes: int = 0
    buckets_listed: int = 0
    requeued: int = 0
    reclaimed: int = 0  # refs given back from dead workers' claims
    removed_buckets: int = 0
    removed_incoming: int = 0


# Take the lock if it is free or its holder's lease (KEYS[2]) has expired: a pass killed with its
# worker must not stop recovery for the lock's whole time to live.
_TAKE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and redis.call('EXISTS', ARGV[3] .. holder) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def _take_lock(connection: Redis, spool: str, holder: str) -> bool:
    lease_prefix = worker_lease_key("")
    return bool(
        connection.eval(_TAKE_LOCK, 1, sweep_lock_key(spool), holder, _LOCK_TTL_S, lease_prefix)
    )


def _recover_bucket(
    spool: Spool, lane: str, bucket: str, rq_queue: Queue, *, epoch: float, dead_writers: bool
) -> int | None:
    """Queue the objects of one unverified, closed bucket if it needs it; how many, or None if
    its objects were all pushed in this epoch."""
    trusted = bucket_start(bucket) >= epoch and not dead_writers
    if trusted and not spool.unqueued_marked(lane, bucket):
        return None
    tally = spool.bucket_tally(lane, bucket)
    recount_bucket(rq_queue.connection, str(spool), lane, bucket, tally)
    refs = [f"{bucket}/{name}" for name in tally[0]]
    if refs:
        push(rq_queue, DrainJob(str(spool), lane), refs, now=time.time())
    spool.clear_unqueued(lane, bucket)
    return len(refs)


def _forget_marks_of_gone_buckets(
    spool: Spool, lane: str, writers: dict[str, list[str]], buckets: set[str], *, now: float
) -> None:
    """Writer marks of dead processes on buckets that no longer exist (emptied and removed)."""
    for bucket, marks in writers.items():
        if bucket not in buckets and bucket_closed(bucket, now=now, grace_s=UNQUEUED_GRACE_S):
            for m in marks:
                if not spool.writer_alive(lane, m, now=now):
                    spool.remove_writer_mark(lane, m)


def recover_lane(
    spool: Spool, lane: str, rq_queue: Queue, result: SweepResult, *, now: float, epoch: float
) -> None:
    connection = rq_queue.connection
    result.lanes += 1
    result.reclaimed += reclaim_dead(connection, lane)
    mark = repr(epoch)
    verified = {k.decode(): v.decode() for k, v in connection.hgetall(verified_key(lane)).items()}
    writers = spool.writer_marks(lane)
    buckets = spool.buckets(lane)
    for bucket in buckets:
        if not bucket_closed(bucket, now=now, grace_s=UNQUEUED_GRACE_S):
            break  # oldest first: the rest are open too
        marks = writers.get(bucket, [])
        if any(spool.writer_alive(lane, m, now=now) for m in marks):
            continue  # its writer is still pushing what it put there
        if verified.get(bucket) == mark and not marks:
            if spool.remove_bucket_if_empty(lane, bucket):
                connection.hdel(verified_key(lane), bucket)
                forget_bucket(connection, str(spool), lane, bucket)
                result.removed_buckets += 1
            continue
        queued = _recover_bucket(
            spool, lane, bucket, rq_queue, epoch=epoch, dead_writers=bool(marks)
        )
        if queued is not None:
            result.buckets_listed += 1
            result.requeued += queued
        connection.hset(verified_key(lane), bucket, mark)
        for m in marks:
            spool.remove_writer_mark(lane, m)
    _forget_marks_of_gone_buckets(spool, lane, writers, set(buckets), now=now)
    if connection.llen(names_key(lane)) and not on_hold(connection, str(spool)):
        forget_lost_drain(rq_queue, lane)
        ensure_drain(rq_queue, DrainJob(str(spool), lane))


def _forget_stale_attempts(spool: Spool, connection: Redis) -> None:
    """Drop the attempt counts and marks a crash left behind for objects that left ready/.

    A worker marks only objects in ready/, and an object never comes back under the same ref, so
    a ref read from a count or a mark whose object is missing from ready/ has left it for good.
    The cost follows the objects with attempts, not the backlog.
    """
    key = attempts_key(str(spool))
    stale = [
        ref
        for ref in (raw.decode() for raw in connection.hkeys(key))
        if not spool.ready_path(ref).exists()
    ]
    if stale:
        connection.hdel(key, *stale)
    for ref, path in spool.attempt_marks():
        if not spool.ready_path(ref).exists():
            path.unlink(missing_ok=True)


def sweep(spool: Spool, rq_queue: Queue, *, now: float, holder: str) -> SweepResult | None:
    """One recovery pass over `spool` by worker `holder`, or None if a live worker's pass holds
    it; `now` is a time.time() reading."""
    connection: Redis = rq_queue.connection
    if not _take_lock(connection, str(spool), holder):
        return None
    try:
        result = SweepResult(removed_incoming=len(spool.remove_dead_incoming(now=now)))
        epoch = current_epoch(connection, now=now)
        for lane in spool.lanes():
            recover_lane(spool, lane, rq_queue, result, now=now, epoch=epoch)
        recount_failed(connection, str(spool), spool.failed_totals(), now=now)
        _forget_stale_attempts(spool, connection)
    finally:
        connection.delete(sweep_lock_key(str(spool)))
    if result.requeued or result.reclaimed or result.removed_incoming:
        log.event("sweep.done", spool=str(spool), **asdict(result))
    return result


def sweep_job(payload: dict) -> None:
    """rq entry point (shared.jobs.SWEEP_FUNCTION)."""
    job = SweepJob.decode(payload)
    rq_job = get_current_job()
    rq_job.connection.delete(sweep_pending_key(job.spool))
    sweep(
        Spool(job.spool, policy.current().modes),
        ingest_queue(rq_job.connection, rq_job.origin),
        now=time.time(),
        holder=rq_job.worker_name or rq_job.id,
    )
