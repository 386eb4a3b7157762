"""Filing one object: read its header, render its path, place it, or quarantine it with a
reason.

Filing is idempotent: an object that is no longer in ready/ was filed (or quarantined) by an
earlier run, and is skipped as gone. Errors of the storage itself (disk full, I/O error, archive
root missing) raise StorageUnavailable and leave the object in ready/; the drain
(workers.drain) gives it back to its lane and puts the spool on hold.
Any other failure counts an attempt against the object (file_counted, workers.attempts);
after the worker policy's limit it goes to failed/.
"""

import os
import random
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from rq.timeouts import JobTimeoutException

from pacs_ingest.shared import log, part10
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.metrics import OBJECTS_QUARANTINED
from pacs_ingest.shared.pattern import Pattern, PatternError, RenderError
from pacs_ingest.shared.safe_path import UnsafePathError, relative_path, safe_value
from pacs_ingest.shared.spool import ReadyObject, Spool
from pacs_ingest.workers.attempts import Attempt, Attempts
from pacs_ingest.workers.duplicates import DuplicateDiffers
from pacs_ingest.workers.header import HeaderError, NoSOPInstanceUID, read_filing_header
from pacs_ingest.workers.place import (
    TRANSIENT_ERRNOS,
    Placed,
    Settlement,
    SourceGone,
    archive_root,
    place,
)


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


_READ_BUFFER = 64 * 1024


@lru_cache(maxsize=64)
def _pattern(source: str) -> Pattern:
    return Pattern.parse(source)


def _render(fp: Any, filing: Filing, rng: random.Random) -> str:
    """The path below the archive root, from a header that was read far enough, never from one
    that was not: with or without a pattern the data set must have a SOP Instance UID."""
    if filing.filepath is None:  # named by the C-STORE's Affected SOP Instance UID, as the
        meta = part10.read_file_meta(fp)  # reference does, from the file meta
        read_filing_header(fp, ())
        return safe_value(meta.media_storage_sop_instance_uid)
    # The header scan reads the file meta itself (the transfer syntax), as pydicom would.
    pattern = _pattern(filing.filepath)
    header = read_filing_header(fp, pattern.tag_paths)
    return pattern.render(header, now=datetime.now(), rng=rng)


def _quarantine(spool: Spool, spooled: ReadyObject, reason: str, error: BaseException) -> Filed:
    return _quarantine_with(
        spool, spooled, {"reason": reason, "error": str(error), "error_type": type(error).__name__}
    )


def _quarantine_with(spool: Spool, spooled: ReadyObject, why: dict[str, Any]) -> Filed:
    name = spooled.ref
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
QUARANTINABLE = tuple(kind for kind, _ in _REASONS)


def _reason(error: Exception) -> str:
    return next(reason for kind, reason in _REASONS if isinstance(error, kind))


def target_path(source: Path, filing: Filing, rng: random.Random) -> Path:
    """Where `source` is filed: the archive root joined with its rendered, safe path. Raises
    SourceGone, OSError or one of the errors of _REASONS."""
    root = archive_root(filing.directory)
    try:
        # A buffer size of our own: no isatty() check (an ioctl), and one read takes the header.
        fp = open(source, "rb", buffering=_READ_BUFFER)  # noqa: SIM115 - closed below
    except FileNotFoundError:
        raise SourceGone(str(source)) from None
    with fp:
        rendered = _render(fp, filing, rng)
    return root / relative_path(rendered, root_length=len(str(root).encode()))


def _place(
    source: Path, filing: Filing, rng: random.Random, settlement: Settlement | None
) -> Placed:
    target = target_path(source, filing, rng)
    return place(source, target, filing, rng=rng, settlement=settlement)


def file_object(
    spool: Spool,
    name: str,
    filing: Filing,
    rng: random.Random,
    settlement: Settlement | None = None,
) -> Filed:
    """File the spooled object `name` (its ref, "<lane>/<bucket>/<name>"), durable on return
    or, given a `settlement`, once that is finished; raise StorageUnavailable to leave it (and
    the rest) for later."""
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
        placed = _place(source, filing, rng, settlement)
    except SourceGone:
        return Filed(name, None, "gone")
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise StorageUnavailable(exc.errno, f"archive: {exc.strerror}") from exc
        root = archive_root(filing.directory)
        if not root.is_dir():  # looked at only now: placing would have failed without it
            raise StorageUnavailable(
                f"archive root {root} is not a directory (not mounted?)"
            ) from exc
        return _quarantine(spool, spooled, "cannot place", exc)
    except QUARANTINABLE as exc:
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
