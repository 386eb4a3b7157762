"""Move a spooled object to its place in the archive: atomically, durably, with retries.

Within one file system a rename(2) does it. Across file systems (EXDEV) we copy into a scratch
file beside the target, fsync it, rename it over the target and only then remove the spool copy;
a crash at any point leaves the object in the spool (to be filed again) or in the archive.
"""

import errno
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from shared.jobs import Filing
from shared.spool import fsync_dir

# Errors that say "the storage is unwell right now", not "this object cannot go there": the
# object stays in the spool and is tried again later instead of being quarantined.
TRANSIENT_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EIO,
        errno.EROFS,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.EAGAIN,
        errno.ETIMEDOUT,
        errno.EBUSY,
    }
)


class SourceGone(FileNotFoundError):
    """Raised when the spooled object is no longer there: another job filed it already."""


def retry_pause(rng: random.Random, jitter_ms: int) -> float:
    """Seconds to pause before the next attempt: floor(U[0,1) x jitter) milliseconds."""
    return int(rng.random() * jitter_ms) / 1000


def _make_parents(directory: Path, root: Path) -> None:
    """mkdir -p `directory`, fsyncing each parent whose entries changed."""
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        fsync_dir(folder.parent)


def _copy_across(source: Path, target: Path) -> None:
    scratch = target.with_name(f".{target.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp")
    try:
        with open(source, "rb") as src, open(scratch, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(scratch, target)
    finally:
        scratch.unlink(missing_ok=True)
    fsync_dir(target.parent)
    source.unlink()


def _move_once(source: Path, target: Path, root: Path) -> None:
    _make_parents(target.parent, root)
    try:
        os.replace(source, target)
    except FileNotFoundError:
        if not source.exists():
            raise SourceGone(str(source)) from None
        raise
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_across(source, target)
        return
    fsync_dir(target.parent)


def place(
    source: Path,
    target: Path,
    filing: Filing,
    *,
    rng: random.Random,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Move `source` to `target` (below `filing.directory`); return the attempts it took.

    Up to `filing.rename_retries` + 1 attempts, with a random pause of up to
    `filing.rename_retry_jitter` ms between them. An existing file at `target` is replaced, as the
    reference does. Raises SourceGone if the object was filed by someone else, or the last
    attempt's OSError.
    """
    root = Path(filing.directory)
    attempts = 0
    while True:
        attempts += 1
        try:
            _move_once(source, target, root)
            return attempts
        except SourceGone:
            raise
        except OSError:
            if attempts > filing.rename_retries:
                raise
            sleep(retry_pause(rng, filing.rename_retry_jitter))
