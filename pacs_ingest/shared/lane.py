"""A lane: the objects of one spool that are filed the same way, and their queue in Redis.

A job used to carry its filing settings and the names it covered, and a hash tracked each waiting
object: some 2,000 bytes of Redis per object. A lane keeps the filing once, in the spool
(ready/<lane>/lane.json, see shared.spool), and its waiting objects as a Redis list of short
references ("<bucket>/<name>", ~45 bytes each). Workers drain a lane with rq jobs that each take
bounded batches off the list (workers.drain); at most one drain job per lane waits in rq's queue.

The spool stays the truth: the list is only a signal, rebuilt by recovery (workers.recovery) when
Redis loses it. The epoch key says since when Redis has kept its data: created by the first write
after a flush, it tells recovery which time buckets may hold objects whose names were lost.
"""

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import asdict

import orjson
from redis import Redis
from rq import Queue

from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import (
    DRAIN_FUNCTION,
    DrainJob,
    decode_filing,
    enqueue_job,
)
from pacs_ingest.shared.keys import EPOCH_KEY, drain_pending_key, names_key
from pacs_ingest.shared.spool import ReadyObject, Spool
from pacs_ingest.shared.spool_counts import count_ready

# A drain job waiting longer than this (a worker died holding it, say) is replaced.
DRAIN_PENDING_TTL_S = 60

_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lane_id(spool: str, filing: Filing) -> str:
    """A short, stable name for (spool, filing): the same settings always file into one lane."""
    digest = hashlib.sha256(orjson.dumps([spool, asdict(filing)], option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:12]


def open_lane(spool: Spool, filing: Filing) -> str:
    """The lane of `filing` in `spool`, its folder and lane.json created if need be; its id."""
    lane = lane_id(str(spool), filing)
    spool.open_lane(lane, orjson.dumps(asdict(filing), option=orjson.OPT_INDENT_2))
    return lane


def lane_filing(spool: Spool, lane: str) -> Filing:
    """The filing options of `lane`, from its lane.json."""
    return decode_filing(orjson.loads(spool.lane_record(lane)))


def current_epoch(connection: Redis, *, now: float) -> float:
    """When Redis started keeping the data it has (the first write after a flush); starts it."""
    connection.set(EPOCH_KEY, repr(now), nx=True)
    return float(connection.get(EPOCH_KEY) or now)


def enqueue_drain(rq_queue: Queue, job: DrainJob, job_id: str) -> None:
    description = f"drain lane {job.lane} of {job.spool}"
    enqueue_job(rq_queue, DRAIN_FUNCTION, job, description, job_id=job_id)


def ensure_drain(rq_queue: Queue, job: DrainJob) -> bool:
    """Enqueue a drain of `job.lane` unless one is already waiting; True if enqueued."""
    job_id = uuid.uuid4().hex
    pending = drain_pending_key(job.lane)
    if not rq_queue.connection.set(pending, job_id, nx=True, ex=DRAIN_PENDING_TTL_S):
        return False
    enqueue_drain(rq_queue, job, job_id)
    return True


def forget_lost_drain(rq_queue: Queue, lane: str) -> bool:
    """Drop the pending mark of a drain job that is not in rq's queue (lost with a worker killed
    as it took the job, or with a flushed queue); True if one was dropped."""
    connection = rq_queue.connection
    job_id = connection.get(drain_pending_key(lane))
    if job_id is None or connection.lpos(rq_queue.key, job_id) is not None:
        return False
    # Compare and delete: a drain enqueued meanwhile keeps its mark.
    return bool(connection.eval(_DELETE_IF, 1, drain_pending_key(lane), job_id))


def push(
    rq_queue: Queue,
    job: DrainJob,
    refs: list[str],
    *,
    now: float,
    counted: Iterable[ReadyObject] = (),
) -> None:
    """Queue `refs` ("<bucket>/<name>") on the lane, and a drain job if none waits; `now` is a
    time.time() reading (the epoch's start, if this push starts one). `counted` (the objects of
    `refs` that just entered ready/) are added to the spool's counts in the same transaction.

    One round trip, plus one to enqueue a drain when none was pending.
    """
    # One transaction: start the epoch if Redis has just lost its data, append the refs, and
    # learn whether a drain job must be enqueued (none pending; the new one's id becomes the
    # pending one). Not a script: redis-py asks whether a pipeline's scripts are loaded, one
    # more round trip on every push.
    if not refs:
        return
    job_id = uuid.uuid4().hex
    with rq_queue.connection.pipeline(transaction=True) as pipe:
        pipe.set(EPOCH_KEY, repr(now), nx=True)
        pipe.rpush(names_key(job.lane), *refs)
        pipe.set(drain_pending_key(job.lane), job_id, nx=True, ex=DRAIN_PENDING_TTL_S)
        count_ready(pipe, job.spool, counted)
        needs_drain = bool(pipe.execute()[2])
    if needs_drain:
        enqueue_drain(rq_queue, job, job_id)
