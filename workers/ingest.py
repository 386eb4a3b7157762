"""The ingest job: for each spooled object read its header, render its path, place it, or
quarantine it with a reason.

Jobs are idempotent: an object that is no longer in ready/ was filed (or quarantined) by an
earlier run, and is skipped. Errors of the storage itself (disk full, I/O error, archive root
missing) leave the object in ready/ and put its spool on hold (workers.backoff); the recovery
sweep enqueues it again once the hold is over.
"""

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from redis import Redis
from rq import get_current_job

from shared import log, part10
from shared.jobs import Filing, IngestJob, tracked_key
from shared.metrics import OBJECTS_QUARANTINED
from shared.pattern import Pattern, PatternError, RenderError
from shared.queue import ingest_queue
from shared.safe_path import UnsafePathError, relative_path, safe_value
from shared.spool import ReadyObject, Spool
from shared.spool_counts import count_leaving
from workers import filing_metrics
from workers.backlog import take_waiting
from workers.backoff import hold, on_hold
from workers.duplicates import DuplicateDiffers
from workers.header import HeaderError, NoSOPInstanceUID, read_filing_header
from workers.place import TRANSIENT_ERRNOS, Placed, Settlement, SourceGone, place

# A running job takes up to this many waiting jobs at a time, for this many rounds, before it
# returns to rq (which then checks for a stop request and records the job).
_BACKLOG_JOBS_PER_ROUND = 32
_BACKLOG_ROUNDS = 8


class StorageUnavailable(OSError):
    """Raised when the archive cannot take objects now; the job fails, the objects wait."""


@dataclass(frozen=True, slots=True)
class Filed:
    name: str
    target: Path | None  # None: quarantined, or already gone
    outcome: str  # "filed", "overwritten", "duplicate" (dropped), "quarantined" or "gone"
    spooled: ReadyObject | None = None  # as it was in ready/; None: gone


@lru_cache(maxsize=64)
def _pattern(source: str) -> Pattern:
    return Pattern.parse(source)


def _render(fp: Any, meta: part10.FileMeta, filing: Filing, rng: random.Random) -> str:
    """The path below the archive root, from a header that was read far enough, never from one
    that was not: with or without a pattern the data set must have a SOP Instance UID."""
    pattern = None if filing.filepath is None else _pattern(filing.filepath)
    header = read_filing_header(fp, () if pattern is None else pattern.tag_paths)
    if pattern is None:  # named by the C-STORE's Affected SOP Instance UID, as the reference does
        return safe_value(meta.media_storage_sop_instance_uid)
    return pattern.render(header, now=datetime.now(), rng=rng)


def _quarantine(spool: Spool, spooled: ReadyObject, reason: str, error: BaseException) -> Filed:
    name = spooled.name
    spool.quarantine(
        name,
        {
            "name": name,
            "reason": reason,
            "error": str(error),
            "error_type": type(error).__name__,
            "failed_at": time.time(),
        },
    )
    log.warning("ingest.quarantined", name=name, reason=reason, error=str(error))
    OBJECTS_QUARANTINED.labels(reason).inc()
    return Filed(name, None, "quarantined", spooled)


# Errors that say "this object cannot be filed" (as opposed to "the storage is unwell"), and the
# reason written beside it in failed/.
_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (part10.FileMetaError, "unreadable"),
    (HeaderError, "unreadable"),
    (NoSOPInstanceUID, "no SOP Instance UID"),
    (PatternError, "unreadable"),
    (RenderError, "cannot render"),
    (UnsafePathError, "bad path"),
    (DuplicateDiffers, "duplicate differs"),
)
_QUARANTINABLE = tuple(kind for kind, _ in _REASONS)


def _reason(error: Exception) -> str:
    return next(reason for kind, reason in _REASONS if isinstance(error, kind))


def _place(
    source: Path, root: Path, filing: Filing, rng: random.Random, settlement: Settlement | None
) -> Placed:
    try:
        fp = open(source, "rb")  # noqa: SIM115 - closed below, before the move
    except FileNotFoundError:
        raise SourceGone(str(source)) from None
    with fp:
        meta = part10.read_file_meta(fp)
        rendered = _render(fp, meta, filing, rng)
    target = root / relative_path(rendered, root_length=len(str(root).encode()))
    return place(source, target, filing, rng=rng, settlement=settlement)


def file_object(
    spool: Spool,
    name: str,
    filing: Filing,
    rng: random.Random,
    settlement: Settlement | None = None,
) -> Filed:
    """File one spooled object, durable on return or, given a `settlement`, once that is
    finished; raise StorageUnavailable to leave it (and the rest) for later."""
    root = Path(filing.directory)
    if not root.is_dir():
        raise StorageUnavailable(f"archive root {root} is not a directory (not mounted?)")
    source = spool.ready_path(name)
    try:
        stat = os.stat(source)  # what the spool's counts know it by (shared.spool_counts)
    except FileNotFoundError:
        return Filed(name, None, "gone")
    spooled = ReadyObject(name, stat.st_mtime, stat.st_size)
    try:
        placed = _place(source, root, filing, rng, settlement)
    except SourceGone:
        return Filed(name, None, "gone")
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise StorageUnavailable(exc.errno, f"archive: {exc.strerror}") from exc
        return _quarantine(spool, spooled, "cannot place", exc)
    except _QUARANTINABLE as exc:
        return _quarantine(spool, spooled, _reason(exc), exc)
    log.event(
        f"ingest.{placed.outcome}", name=name, target=str(placed.path), attempts=placed.attempts
    )
    return Filed(name, placed.path, placed.outcome, spooled)


def _file_round(jobs: list[IngestJob], connection: Redis, rng: random.Random) -> None:
    """File the objects of `jobs`, made durable together; on a storage failure leave the rest
    of that spool's objects in ready/ and hold the spool."""
    settlement = Settlement()
    done: dict[str, list[Filed]] = {}
    for job in jobs:
        if on_hold(connection, job.spool):
            continue
        spool = Spool(job.spool)
        results = done.setdefault(job.spool, [])
        try:
            for name in job.names:
                results.append(file_object(spool, name, job.filing, rng, settlement))
        except StorageUnavailable as exc:
            hold(connection, job.spool, str(exc))
    try:
        settlement.finish()
    except OSError as exc:  # nothing of the round was removed from ready/: filed again later
        for spool_dir in done:
            hold(connection, spool_dir, f"archive: {exc.strerror or exc}")
        return
    now = time.time()
    for spool_dir, results in done.items():
        if results:
            _untrack(connection, spool_dir, results, now=now)


def _untrack(connection: Redis, spool: str, done: list[Filed], *, now: float) -> None:
    """One round trip per spool and round: the objects are no longer tracked, nor counted in
    ready/."""
    filed = [f.spooled for f in done if f.spooled is not None and f.outcome != "quarantined"]
    failed = [f.spooled for f in done if f.spooled is not None and f.outcome == "quarantined"]
    with connection.pipeline(transaction=False) as pipe:
        pipe.hdel(tracked_key(spool), *(f.name for f in done))
        count_leaving(pipe, spool, filed, failed, now=now)
        pipe.execute()
    filing_metrics.batch_done(done, filed, now)


def ingest_job(payload: dict[str, Any]) -> None:
    """rq entry point (shared.jobs.INGEST_FUNCTION): file this job's objects, then those of
    waiting jobs (see workers.backlog) until the queue is empty or enough rounds have run."""
    rq_job = get_current_job()
    rq_queue = ingest_queue(rq_job.connection, rq_job.origin)
    rng = random.Random()
    pending = [IngestJob.decode(payload)]
    for _ in range(_BACKLOG_ROUNDS):
        _file_round(pending, rq_job.connection, rng)
        pending = take_waiting(rq_queue, rq_job.id, _BACKLOG_JOBS_PER_ROUND)
        if not pending:
            return
    _file_round(pending, rq_job.connection, rng)
