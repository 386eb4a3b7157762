"""One reading of a spool's state: what `pacs-ingest status` prints and /metrics exports.

It costs a handful of Redis commands, a statvfs per file system and a listing of incoming/ (as
long as the stores in flight, never the backlog): the counts come from shared.spool_counts, the
processes from shared.heartbeat, the queue from shared.queue. With Redis unreachable it still
says what the local file systems say.
"""

import os
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from shared.heartbeat import Beat, live_processes
from shared.jobs import registered_filing
from shared.queue import jobs_in_progress, queue_depth
from shared.spool import Spool
from shared.spool_counts import SpoolCounts, read_counts


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at: float  # time.time()
    spool: str
    queue: str
    redis_error: str | None  # None: Redis answered
    queue_depth: int | None  # jobs waiting (each covers one or more objects)
    jobs_in_progress: int | None
    receivers: tuple[Beat, ...]  # live receiver processes of this spool
    workers: tuple[Beat, ...]  # live worker processes on this queue
    counts: SpoolCounts | None
    incoming_objects: int
    incoming_bytes: int
    archive: str | None  # the archive root the spool's receivers announced
    spool_free_bytes: int | None
    archive_free_bytes: int | None

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


def take_snapshot(spool: Spool, connection: Redis, queue: str, *, now: float) -> Snapshot:
    """The state of `spool` and of the processes serving it; `now` is a time.time() reading."""
    try:
        incoming = spool.incoming_totals()
    except FileNotFoundError:  # no receiver has created the spool yet
        incoming = (0, 0)
    try:
        processes = live_processes(connection)
        counts = read_counts(connection, str(spool), now=now)
        filing = registered_filing(connection, str(spool))
        depth = queue_depth(connection, queue)
        in_progress = jobs_in_progress(connection, queue)
        redis_error = None
    except RedisError as exc:
        processes, counts, filing, depth, in_progress = [], None, None, None, None
        redis_error = str(exc) or type(exc).__name__
    archive = None if filing is None else filing.directory
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
        archive=archive,
        spool_free_bytes=free_bytes(spool.root),
        archive_free_bytes=None if archive is None else free_bytes(archive),
    )
