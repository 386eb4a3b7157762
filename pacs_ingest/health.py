"""One reading of a spool's state: what `pacs-ingest status` prints and /metrics exports.

It costs a handful of Redis commands, a statvfs per file system, a listing of incoming/ (as
long as the stores in flight, never the backlog) and of ready/ (its lanes, whose lane.json
names their archive; never a bucket): the counts come from shared.spool_counts, the processes
from pacs_ingest.shared.heartbeat, the queue depth from the lanes' lists (shared.queue). With Redis
unreachable it still says what the local file systems say.
"""

import os
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from pacs_ingest.shared.heartbeat import Beat, live_processes
from pacs_ingest.shared.lane import lane_filing
from pacs_ingest.shared.queue import jobs_in_progress, queue_depth
from pacs_ingest.shared.spool import Spool
from pacs_ingest.shared.spool_counts import SpoolCounts, read_counts


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float  # time.time()
    spool: str
    queue: str
    redis_error: str | None  # None: Redis answered
    queue_depth: int | None  # refs waiting in the spool's lanes, not yet claimed by a drain
    jobs_in_progress: int | None  # drain and recovery jobs workers are running
    receivers: tuple[Beat, ...]  # live receiver processes of this spool
    workers: tuple[Beat, ...]  # live worker processes on this queue
    counts: SpoolCounts | None
    incoming_objects: int
    incoming_bytes: int
    spool_free_bytes: int | None
    archives: tuple[tuple[str, int | None], ...]  # (archive root of a lane, its free bytes)

    @property
    def oldest_unfiled_age(self) -> float | None:
        """Seconds the oldest object in ready/ has waited; None if nothing waits (or unknown)."""
        if self.counts is None or self.counts.oldest_ready_at is None:
            return None
        return max(0.0, self.taken_at - self.counts.oldest_ready_at)


def free_bytes(path: str | os.PathLike) -> int | None:
    """Bytes an unprivileged writer may still use on the file system of `path`."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _lanes(spool: Spool) -> list[str]:
    try:
        return spool.lanes()
    except FileNotFoundError:  # no receiver has created the spool yet
        return []


def _archives(spool: Spool, lanes: list[str]) -> list[str]:
    """The archive roots the lanes of `spool` file into (a lane without its lane.json yet, or
    with an unreadable one, names none)."""
    found = []
    for lane in lanes:
        try:
            directory = lane_filing(spool, lane).directory
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if directory not in found:
            found.append(directory)
    return found


def take_snapshot(spool: Spool, connection: Redis, queue: str, *, now: float) -> Snapshot:
    """The state of `spool` and of the processes serving it; `now` is a time.time() reading."""
    try:
        incoming = spool.incoming_totals()
    except FileNotFoundError:  # no receiver has created the spool yet
        incoming = (0, 0)
    lanes = _lanes(spool)
    try:
        processes = live_processes(connection)
        counts = read_counts(connection, str(spool), now=now)
        depth = queue_depth(connection, lanes)
        in_progress = jobs_in_progress(connection, queue)
        redis_error = None
    except RedisError as exc:
        processes, counts, depth, in_progress = [], None, None, None
        redis_error = str(exc) or type(exc).__name__
    return Snapshot(
        taken_at=now,
        spool=str(spool),
        queue=queue,
        redis_error=redis_error,
        queue_depth=depth,
        jobs_in_progress=in_progress,
        receivers=tuple(p for p in processes if p.role == "receiver" and p.spool == str(spool)),
        workers=tuple(p for p in processes if p.role == "worker" and p.queue == queue),
        counts=counts,
        incoming_objects=incoming[0],
        incoming_bytes=incoming[1],
        spool_free_bytes=free_bytes(spool.root),
        archives=tuple((path, free_bytes(path)) for path in _archives(spool, lanes)),
    )
