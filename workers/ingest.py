"""The ingest job: for each spooled object read its header, render its path, place it, or
quarantine it with a reason.

Jobs are idempotent: an object that is no longer in ready/ was filed (or quarantined) by an
earlier run, and is skipped. Errors of the storage itself (disk full, I/O error, archive root
missing) leave the object in ready/ and put its spool on hold (workers.backoff); the recovery
sweep enqueues it again once the hold is over. Any other failure counts an attempt against the
object (workers.attempts); after the worker policy's limit it goes to failed/.
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
from rq.timeouts import JobTimeoutException

from shared import log, part10
from shared.jobs import Filing, IngestJob, tracked_key
from shared.metrics import OBJECTS_QUARANTINED
from shared.pattern import Pattern, PatternError, RenderError
from shared.queue import ingest_queue
from shared.safe_path import UnsafePathError, relative_path, safe_value
from shared.spool import ReadyObject, Spool
from shared.spool_counts import count_leaving
from workers import filing_metrics, policy
from workers.attempts import Attempt, Attempts
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
    # "filed", "overwritten", "duplicate" (dropped), "quarantined", "gone", or "retry" (an
    # attempt failed; it stays in ready/ for another job)
    outcome: str
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
    return _quarantine_with(
        spool, spooled, {"reason": reason, "error": str(error), "error_type": type(error).__name__}
    )


def _quarantine_with(spool: Spool, spooled: ReadyObject, why: dict[str, Any]) -> Filed:
    name = spooled.name
    spool.quarantine(name, {"name": name, **why, "failed_at": time.time()})
    log.warning("ingest.quarantined", name=name, reason=why["reason"], error=why["error"])
    OBJECTS_QUARANTINED.labels(why["reason"]).inc()
    return Filed(name, None, "quarantined", spooled)


def _give_up(spool: Spool, attempt: Attempt, attempts: int, error: str | None) -> Filed:
    """failed/ with `too many attempts`, naming the last error (an object moved away by someone
    else meanwhile counts as gone)."""
    why = {"reason": "too many attempts", "error": error, "attempts": attempts}
    try:
        stat = os.stat(spool.ready_path(attempt.name))
        return _quarantine_with(spool, ReadyObject(attempt.name, stat.st_mtime, stat.st_size), why)
    except FileNotFoundError:
        return Filed(attempt.name, None, "gone")


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
    if settlement is None:  # durable on return; folders made with the spool's modes
        settlement = Settlement(spool.modes)
        filed = file_object(spool, name, filing, rng, settlement)
        settlement.finish()
        return filed
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


def file_counted(
    spool: Spool,
    name: str,
    filing: Filing,
    rng: random.Random,
    attempts: Attempts,
    settlement: Settlement,
) -> Filed:
    """file_object as one counted attempt; after `attempts.limit` failed ones, failed/.

    Raises StorageUnavailable (uncounted; also when the spool cannot take the attempt's mark)
    and JobTimeoutException (counted: the job is over).
    """
    try:
        attempt = attempts.begin(name)
    except OSError as exc:
        if exc.errno not in TRANSIENT_ERRNOS:
            raise
        raise StorageUnavailable(exc.errno, f"spool: {exc.strerror}") from exc
    if attempts.exhausted(attempt):
        return _give_up(spool, attempt, attempt.number - 1, attempt.previous_error)
    try:
        filed = file_object(spool, name, filing, rng, settlement)
    except StorageUnavailable:
        attempts.take_back(attempt)
        raise
    except Exception as exc:
        error = attempts.failed(attempt, exc)
        log.warning("ingest.attempt_failed", name=name, attempt=attempt.number, error=error)
        filed = Filed(name, None, "retry")
        if attempt.number >= attempts.limit:
            filed = _give_up(spool, attempt, attempt.number, error)
        if isinstance(exc, JobTimeoutException):
            raise
    return filed


@dataclass(slots=True)
class _SpoolRound:
    """One spool's part of a round: its attempts, and the objects done with (placed, durable
    once the round's settlement is finished; quarantined; gone)."""

    spool: Spool
    attempts: Attempts
    done: list[Filed]

    def file(self, job: IngestJob, rng: random.Random, settlement: Settlement) -> None:
        """File `job`'s objects, each a counted attempt; raises StorageUnavailable."""
        for name in job.names:
            filed = file_counted(self.spool, name, job.filing, rng, self.attempts, settlement)
            if filed.outcome != "retry":
                self.done.append(filed)


def _file_round(jobs: list[IngestJob], connection: Redis, rng: random.Random) -> None:
    """File the objects of `jobs`, made durable together; on a storage failure leave the rest
    of that spool's objects in ready/ and hold the spool."""
    worker = policy.current()
    settlement = Settlement(worker.modes)
    rounds: dict[str, _SpoolRound] = {}
    for job in jobs:
        if on_hold(connection, job.spool):
            continue
        if job.spool not in rounds:
            spool = Spool(job.spool, worker.modes)
            attempts = Attempts(connection, spool, worker.max_attempts)
            rounds[job.spool] = _SpoolRound(spool, attempts, [])
        try:
            rounds[job.spool].file(job, rng, settlement)
        except StorageUnavailable as exc:
            hold(connection, job.spool, str(exc))
    try:
        settlement.finish()
    except OSError as exc:  # nothing of the round was removed from ready/: filed again later
        for spool_dir, part in rounds.items():
            placed = [f.name for f in part.done if f.target is not None]
            part.attempts.take_back_all(placed)  # the storage failed, not the objects
            hold(connection, spool_dir, f"archive: {exc.strerror or exc}")
        return
    now = time.time()
    for spool_dir, part in rounds.items():
        if part.done:
            _untrack(connection, spool_dir, part, now=now)


def _untrack(connection: Redis, spool: str, part: _SpoolRound, *, now: float) -> None:
    """One round trip per spool and round: the objects are no longer tracked, nor counted in
    ready/, and their attempts are forgotten."""
    done = part.done
    filed = [f.spooled for f in done if f.spooled is not None and f.outcome != "quarantined"]
    failed = [f.spooled for f in done if f.spooled is not None and f.outcome == "quarantined"]
    with connection.pipeline(transaction=False) as pipe:
        pipe.hdel(tracked_key(spool), *(f.name for f in done))
        count_leaving(pipe, spool, filed, failed, now=now)
        part.attempts.forget([f.name for f in done], pipe)
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
