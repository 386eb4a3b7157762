"""The ingest job: for each spooled object read its header, render its path, place it, or
quarantine it with a reason.

Jobs are idempotent: an object that is no longer in ready/ was filed (or quarantined) by an
earlier run, and is skipped. Errors of the storage itself (disk full, I/O error, archive root
missing) leave the object in ready/ and fail the job; the recovery sweep enqueues it again later.
"""

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
from shared.pattern import Pattern, PatternError, RenderError
from shared.safe_path import UnsafePathError, relative_path, safe_value
from shared.spool import Spool
from workers.header import HeaderError, read_header
from workers.lease import held_lease
from workers.place import TRANSIENT_ERRNOS, SourceGone, place


class StorageUnavailable(OSError):
    """Raised when the archive cannot take objects now; the job fails, the objects wait."""


@dataclass(frozen=True, slots=True)
class Filed:
    name: str
    target: Path | None  # None: quarantined, or already gone
    outcome: str  # "filed", "quarantined" or "gone"


@lru_cache(maxsize=64)
def _pattern(source: str) -> Pattern:
    return Pattern.parse(source)


def _render(fp: Any, meta: part10.FileMeta, filing: Filing, rng: random.Random) -> str:
    if filing.filepath is None:
        return safe_value(meta.media_storage_sop_instance_uid)
    pattern = _pattern(filing.filepath)
    fp.seek(0)
    header = read_header(fp, pattern.stop_tag)
    # Rendered while the file is open: large values pydicom deferred are read from it.
    return pattern.render(header, now=datetime.now(), rng=rng)


def _quarantine(spool: Spool, name: str, reason: str, error: BaseException) -> Filed:
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
    return Filed(name, None, "quarantined")


def file_object(spool: Spool, name: str, filing: Filing, rng: random.Random) -> Filed:
    """File one spooled object; raise StorageUnavailable to leave it (and the rest) for later."""
    source = spool.ready_path(name)
    root = Path(filing.directory)
    if not root.is_dir():
        raise StorageUnavailable(f"archive root {root} is not a directory (not mounted?)")
    try:
        fp = open(source, "rb")  # noqa: SIM115 - closed below, before the move
    except FileNotFoundError:
        return Filed(name, None, "gone")
    try:
        with fp:
            meta = part10.read_file_meta(fp)
            rendered = _render(fp, meta, filing, rng)
        target = root / relative_path(rendered, root_length=len(str(root).encode()))
        attempts = place(source, target, filing, rng=rng)
    except SourceGone:
        return Filed(name, None, "gone")
    except (part10.FileMetaError, HeaderError, PatternError) as exc:
        return _quarantine(spool, name, "unreadable", exc)
    except (RenderError, UnsafePathError) as exc:
        reason = "cannot render" if isinstance(exc, RenderError) else "bad path"
        return _quarantine(spool, name, reason, exc)
    except OSError as exc:
        if exc.errno in TRANSIENT_ERRNOS:
            raise StorageUnavailable(exc.errno, f"archive: {exc.strerror}") from exc
        return _quarantine(spool, name, "cannot place", exc)
    log.event("ingest.filed", name=name, target=str(target), attempts=attempts)
    return Filed(name, target, "filed")


def ingest_job(payload: dict[str, Any]) -> None:
    """rq entry point (shared.jobs.INGEST_FUNCTION)."""
    job = IngestJob.decode(payload)
    rq_job = get_current_job()
    connection: Redis = rq_job.connection
    spool = Spool(job.spool)
    rng = random.Random()
    done: list[str] = []
    try:
        with held_lease(connection, rq_job.id):
            for name in job.names:
                file_object(spool, name, job.filing, rng)
                done.append(name)
    finally:
        if done:
            connection.hdel(tracked_key(job.spool), *done)
