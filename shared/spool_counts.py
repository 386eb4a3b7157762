"""A spool's counts kept in Redis, so that `status` and the metrics never list ready/ or failed/.

One hash per spool holds, per arrival bucket (BUCKET_S seconds of ready/ mtime), the objects and
bytes still waiting and the mtime of the earliest of them; plus the objects and bytes in failed/
and when the spool was last recounted. Objects filed per second are short-lived keys.

    receivers   add each group commit's objects, in the pipeline that enqueues its job
    workers     take each batch's objects out, in the pipeline that untracks them
    reprocess   adds what it puts into ready/ (from failed/, or imported)
    the sweep   recounts from its listing of ready/ and failed/ (it lists ready/ anyway), so a
                crash between a move and its count, or a Redis that lost its data, skews the
                counts for one sweep interval at most (two minutes for the newest buckets,
                which the sweep leaves to the increments while they still fill)

An object's bucket comes from its file's mtime, which receivers, workers and the sweep all read
from the file itself, so each side agrees on where an object is counted.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from shared.spool import ReadyObject

BUCKET_S = 60
_FILED_KEEP_S = 90  # per-second filed counters live this long; status sums the last 60
_FAILED_OBJECTS, _FAILED_BYTES, _COUNTED_AT = "failed_objects", "failed_bytes", "counted_at"


def counts_key(spool: str) -> str:
    return f"pacs-ingest:counts:{spool}"


def _filed_key(spool: str, second: int) -> str:
    return f"pacs-ingest:filed:{spool}:{second}"


def _buckets(objects: Iterable[ReadyObject]) -> dict[int, list[float]]:
    """bucket -> [objects, bytes, earliest mtime]."""
    buckets: dict[int, list[float]] = {}
    for item in objects:
        bucket = int(item.mtime // BUCKET_S)
        tally = buckets.get(bucket)
        if tally is None:
            buckets[bucket] = [1, item.size, item.mtime]
        else:
            tally[0] += 1
            tally[1] += item.size
            tally[2] = min(tally[2], item.mtime)
    return buckets


def count_ready(
    pipe: Pipeline, spool: str, objects: Iterable[ReadyObject], *, from_failed: bool = False
) -> None:
    """Append to `pipe`: `objects` entered ready/ (`from_failed`: they left failed/ for it)."""
    key = counts_key(spool)
    moved = size = 0
    for bucket, (count, nbytes, earliest) in _buckets(objects).items():
        pipe.hincrby(key, f"n:{bucket}", int(count))
        pipe.hincrby(key, f"b:{bucket}", int(nbytes))
        pipe.hsetnx(key, f"t:{bucket}", earliest)
        moved += int(count)
        size += int(nbytes)
    if from_failed and moved:
        pipe.hincrby(key, _FAILED_OBJECTS, -moved)
        pipe.hincrby(key, _FAILED_BYTES, -size)


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
        second_key = _filed_key(spool, int(now))
        pipe.incrby(second_key, len(filed))
        pipe.expire(second_key, _FILED_KEEP_S)


def recount(
    connection: Redis,
    spool: str,
    ready: Iterable[ReadyObject],
    failed: tuple[int, int],
    *,
    listed_at: float,
) -> None:
    """Replace the counts by what a listing begun at `listed_at` found (the sweep's).

    Buckets still filling (the current and the previous one) are left to the receivers'
    increments: the listing cannot tell which of their objects were counted already.
    """
    key = counts_key(spool)
    settled_before = int(listed_at // BUCKET_S) - 1
    listed = {b: tally for b, tally in _buckets(ready).items() if b < settled_before}
    stale = [
        field
        for field in (raw.decode() for raw in connection.hkeys(key))
        if field[:2] in ("n:", "b:", "t:")
        and int(field[2:]) < settled_before
        and int(field[2:]) not in listed
    ]
    with connection.pipeline() as pipe:
        if stale:
            pipe.hdel(key, *stale)
        for bucket, (count, nbytes, earliest) in listed.items():
            pipe.hset(
                key, mapping={f"n:{bucket}": count, f"b:{bucket}": nbytes, f"t:{bucket}": earliest}
            )
        totals = {_FAILED_OBJECTS: failed[0], _FAILED_BYTES: failed[1], _COUNTED_AT: listed_at}
        pipe.hset(key, mapping=totals)
        pipe.execute()


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    ready_objects: int
    ready_bytes: int
    oldest_ready_at: float | None  # mtime of the oldest object waiting; None: nothing waits
    failed_objects: int
    failed_bytes: int
    filed_last_minute: int
    counted_at: float | None  # last recount by a sweep; None: never, or Redis lost its data


def read_counts(connection: Redis, spool: str, *, now: float) -> SpoolCounts:
    """The counts of `spool`: two commands in one round trip, whatever the backlog."""
    second = int(now)
    with connection.pipeline(transaction=False) as pipe:
        pipe.hgetall(counts_key(spool))
        pipe.mget([_filed_key(spool, s) for s in range(second - 59, second + 1)])
        fields, filed = pipe.execute()
    values = {k.decode(): float(v) for k, v in fields.items()}
    objects = size = 0
    oldest = None
    for field, value in values.items():
        if not field.startswith("n:") or value <= 0:
            continue  # an empty bucket (or one a crash skewed below zero until the recount)
        bucket = field[2:]
        objects += int(value)
        size += max(0, int(values.get(f"b:{bucket}", 0)))
        earliest = values.get(f"t:{bucket}", int(bucket) * BUCKET_S)
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
