"""A lane: the objects of one spool that are filed the same way, and their queue in Redis.

A job used to carry its filing settings and the names it covered, and a hash tracked each waiting
object: some 2,000 bytes of Redis per object. A lane keeps the filing once, in the spool
(ready/<lane>/lane.json, see shared.spool), and its waiting objects as a Redis list of short
references ("<bucket>/<name>", ~45 bytes each). Workers drain a lane with rq jobs that each take
bounded batches off the list (workers.drain).

A lane has one drain at a time, so that its batches stay whole: split between workers that could
each keep up alone, every batch would be smaller and pay its round trips and folder fsyncs for
fewer objects. The lane's drain mark (keys.drain_key) holds the id of its drain job while the job
waits in rq's queue, then RUNNING and the worker's name while it runs; a push enqueues a drain
only when there is no mark, and the drain removes its mark as it returns. A drain that falls
behind asks for a helper, another drain job, which any idle worker takes (workers.drain).

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
from pacs_ingest.shared.keys import (
    EPOCH_KEY,
    drain_helper_key,
    drain_key,
    names_key,
    worker_lease_key,
)
from pacs_ingest.shared.spool import ReadyObject, Spool
from pacs_ingest.shared.spool_counts import count_ready

# A drain mark older than this (its job lost with a worker, say) is replaced; a drain running
# longer than this (a batch of huge objects) may see a second drain of its lane start.
DRAIN_MARK_TTL_S = 60
RUNNING = "running:"  # the prefix of a running drain's mark; its worker's name follows

_DELETE_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: the drain mark, the helper mark; ARGV: the job's id, its running mark, the TTL. The
# lane's drain turns its mark into a running one (1); a helper frees the helper mark (0).
_START = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
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
    """Enqueue a drain of `job.lane` unless it has one, waiting or running; True if enqueued."""
    return _enqueue_marked(rq_queue, job, drain_key(job.lane))


def ask_for_helper(rq_queue: Queue, job: DrainJob) -> bool:
    """Enqueue a helper drain of `job.lane` unless one is already waiting; True if enqueued."""
    return _enqueue_marked(rq_queue, job, drain_helper_key(job.lane))


def _enqueue_marked(rq_queue: Queue, job: DrainJob, mark: str) -> bool:
    job_id = uuid.uuid4().hex
    if not rq_queue.connection.set(mark, job_id, nx=True, ex=DRAIN_MARK_TTL_S):
        return False
    enqueue_drain(rq_queue, job, job_id)
    return True


def start_drain(connection: Redis, lane: str, job_id: str, worker: str) -> bool:
    """As drain job `job_id` starts on `worker`: True if it is the lane's drain (its mark now
    says it runs), False if it is a helper."""
    keys = (drain_key(lane), drain_helper_key(lane))
    args = (job_id, RUNNING + worker, DRAIN_MARK_TTL_S)
    return bool(connection.eval(_START, 2, *keys, *args))


def end_drain(connection: Redis, lane: str, worker: str) -> None:
    """The lane's drain, run by `worker`, returns: its mark goes, unless another replaced it."""
    connection.eval(_DELETE_IF, 1, drain_key(lane), RUNNING + worker)


def forget_lost_drain(rq_queue: Queue, lane: str) -> bool:
    """Drop the mark of a drain that is neither in rq's queue nor running on a live worker (lost
    with a worker killed as it took the job or ran it, or with a flushed queue); True if one
    was dropped."""
    connection = rq_queue.connection
    mark = connection.get(drain_key(lane))
    if mark is None:
        return False
    if mark.startswith(RUNNING.encode()):
        worker = mark[len(RUNNING) :].decode(errors="replace")
        if connection.exists(worker_lease_key(worker)):
            return False
    elif connection.lpos(rq_queue.key, mark) is not None:
        return False
    # Compare and delete: a drain enqueued or started meanwhile keeps its mark.
    return bool(connection.eval(_DELETE_IF, 1, drain_key(lane), mark))


def push(
    rq_queue: Queue,
    job: DrainJob,
    refs: list[str],
    *,
    now: float,
    counted: Iterable[ReadyObject] = (),
) -> None:
    """Queue `refs` ("<bucket>/<name>") on the lane, and a drain job if it has none; `now` is a
    time.time() reading (the epoch's start, if this push starts one). `counted` (the objects of
    `refs` that just entered ready/) are added to the spool's counts in the same transaction.

    One round trip, plus one to enqueue a drain when the lane had none.
    """
    # One transaction: start the epoch if Redis has just lost its data, append the refs, and
    # learn whether a drain job must be enqueued (no mark; the new job's id becomes the mark).
    # Not a script: redis-py asks whether a pipeline's scripts are loaded, one more round trip
    # on every push.
    if not refs:
        return
    job_id = uuid.uuid4().hex
    with rq_queue.connection.pipeline(transaction=True) as pipe:
        pipe.set(EPOCH_KEY, repr(now), nx=True)
        pipe.rpush(names_key(job.lane), *refs)
        pipe.set(drain_key(job.lane), job_id, nx=True, ex=DRAIN_MARK_TTL_S)
        count_ready(pipe, job.spool, counted)
        needs_drain = bool(pipe.execute()[2])
    if needs_drain:
        enqueue_drain(rq_queue, job, job_id)
