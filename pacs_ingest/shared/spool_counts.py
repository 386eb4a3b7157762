"""A spool's counts kept in Redis, so that `status` and the metrics never list ready/ or failed/.

One hash per spool holds, per lane bucket of ready/ ("<lane>/<bucket>", shared.spool), the
objects and bytes still waiting in it and the mtime of the earliest of them; plus the objects and
bytes in failed/ and when recovery last counted. Objects filed per second are short-lived keys.

    receivers   add each group commit's objects, in the transaction that pushes their refs
    reprocess   adds each admitted batch the same way, and takes what it moves out of failed/
    drains      take each batch's objects out once the batch is settled
    recovery    sets a bucket's counts from its listing whenever it lists one (after Redis lost
                its data, or when a writer died owing pushes), drops them with the bucket when
                it removes it, and recounts failed/ on every pass

A bucket recovery never lists (every object in it was pushed in this epoch) is counted by the
increments alone; a worker killed between filing and counting leaves its bucket counted high
until the bucket is emptied and removed, which drops its counts.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from pacs_ingest.shared.keys import counts_key, filed_key
from pacs_ingest.shared.spool import ReadyObject, bucket_start

_FILED_KEEP_S = 90  # per-second filed counters live this long; status sums the last 60
_FAILED_OBJECTS, _FAILED_BYTES, _COUNTED_AT = "failed_objects", "failed_bytes", "counted_at"


def _bucket_of(ref: str) -> str:
    """ "<lane>/<bucket>" of a ref "<lane>/<bucket>/<name>"."""
    return ref.rpartition("/")[0]


def _buckets(objects: Iterable[ReadyObject]) -> dict[str, list[float]]:
    """ "<lane>/<bucket>" -> [objects, bytes, earliest mtime]."""
    buckets: dict[str, list[float]] = {}
    for item in objects:
        bucket = _bucket_of(item.ref)
        tally = buckets.get(bucket)
        if tally is None:
            buckets[bucket] = [1, item.size, item.mtime]
        else:
            tally[0] += 1
            tally[1] += item.size
            tally[2] = min(tally[2], item.mtime)
    return buckets


def count_ready(pipe: Pipeline, spool: str, objects: Iterable[ReadyObject]) -> None:
    """Append to `pipe`: `objects` entered ready/."""
    key = counts_key(spool)
    for bucket, (count, nbytes, earliest) in _buckets(objects).items():
        pipe.hincrby(key, f"n:{bucket}", int(count))
        pipe.hincrby(key, f"b:{bucket}", int(nbytes))
        pipe.hsetnx(key, f"t:{bucket}", earliest)


def count_unquarantined(pipe: Pipeline, spool: str, objects: list[ReadyObject]) -> None:
    """Append to `pipe`: `objects` left failed/ (for ready/, where they are counted as they are
    pushed)."""
    if objects:
        key = counts_key(spool)
        pipe.hincrby(key, _FAILED_OBJECTS, -len(objects))
        pipe.hincrby(key, _FAILED_BYTES, -sum(item.size for item in objects))


def count_leaving(
    pipe: Pipeline,
    spool: str,
    filed: list[ReadyObject],
    failed: list[ReadyObject],
    *,
    now: float,
) -> None:
    """Append to `pipe`: `filed` left ready/ for the archive (or were dropped as duplicates),
    `failed` for failed/."""
    key = counts_key(spool)
    for bucket, (count, nbytes, _) in _buckets([*filed, *failed]).items():
        pipe.hincrby(key, f"n:{bucket}", -int(count))
        pipe.hincrby(key, f"b:{bucket}", -int(nbytes))
    if failed:
        pipe.hincrby(key, _FAILED_OBJECTS, len(failed))
        pipe.hincrby(key, _FAILED_BYTES, sum(item.size for item in failed))
    if filed:
        second_key = filed_key(spool, int(now))
        pipe.incrby(second_key, len(filed))
        pipe.expire(second_key, _FILED_KEEP_S)


def _fields(lane: str, bucket: str) -> list[str]:
    return [f"{kind}:{lane}/{bucket}" for kind in ("n", "b", "t")]


def recount_bucket(
    connection: Redis,
    spool: str,
    lane: str,
    bucket: str,
    tally: tuple[list[str], int, float | None],
) -> None:
    """Replace the counts of one bucket by what recovery's listing of it found
    (Spool.bucket_tally: its names, their bytes, their earliest mtime)."""
    names, nbytes, earliest = tally
    key = counts_key(spool)
    n, b, t = _fields(lane, bucket)
    with connection.pipeline() as pipe:
        pipe.hdel(key, n, b, t)
        if names and earliest is not None:
            pipe.hset(key, mapping={n: len(names), b: nbytes, t: earliest})
        pipe.execute()


def forget_bucket(connection: Redis, spool: str, lane: str, bucket: str) -> None:
    """The bucket was emptied and removed: its counts go, with any skew a crash left in them."""
    connection.hdel(counts_key(spool), *_fields(lane, bucket))


def recount_failed(connection: Redis, spool: str, failed: tuple[int, int], *, now: float) -> None:
    """Replace the counts of failed/ by recovery's listing of it, made at `now`."""
    totals = {_FAILED_OBJECTS: failed[0], _FAILED_BYTES: failed[1], _COUNTED_AT: now}
    connection.hset(counts_key(spool), mapping=totals)


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    ready_objects: int
    ready_bytes: int
    oldest_ready_at: float | None  # mtime of the oldest object waiting; None: nothing waits
    failed_objects: int
    failed_bytes: int
    filed_last_minute: int
    counted_at: float | None  # last recovery pass; None: never, or Redis lost its data


def read_counts(connection: Redis, spool: str, *, now: float) -> SpoolCounts:
    """The counts of `spool`: two commands in one round trip, whatever the backlog."""
    second = int(now)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(counts_key(spool))
        pipe.mget([filed_key(spool, s) for s in range(second - 59, second + 1)])
        fields, filed = pipe.execute()
    values = {k.decode(): float(v) for k, v in fields.items()}
    objects = size = 0
    oldest = None
    for field, value in values.items():
        if not field.startswith("n:") or value <= 0:
            continue  # an empty bucket (or one a crash skewed below zero)
        bucket = field[2:]
        objects += int(value)
        size += max(0, int(values.get(f"b:{bucket}", 0)))
        earliest = values.get(f"t:{bucket}", bucket_start(bucket.rpartition("/")[2]))
        oldest = earliest if oldest is None else min(oldest, earliest)
    return SpoolCounts(
        ready_objects=objects,
        ready_bytes=size,
        oldest_ready_at=oldest,
        failed_objects=max(0, int(values.get(_FAILED_OBJECTS, 0))),
        failed_bytes=max(0, int(values.get(_FAILED_BYTES, 0))),
        filed_last_minute=sum(int(count) for count in filed if count is not None),
        counted_at=values.get(_COUNTED_AT),
    )
