"""Move a spooled object to its place in the archive: atomically, durably, with retries.

Within one file system a rename(2) does it (or link(2), when an existing file must not be
replaced). Across file systems (EXDEV) we copy into a scratch file beside the target, fsync it,
rename or link it into place and only then remove the spool copy; a crash at any point leaves the
object in the spool (to be filed again) or in the archive, and filing it again is harmless.
"""

import errno
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shared.jobs import Filing
from shared.modes import DEFAULT_MODES, Modes, make_dir, open_new
from shared.spool import fsync_dir
from workers import duplicates

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


@dataclass(frozen=True, slots=True)
class Placed:
    path: Path
    outcome: str  # "filed"; "duplicate" when the archive held this object; "overwritten"
    attempts: int = 1


class SourceGone(FileNotFoundError):
    """Raised when the spooled object is no longer there: another job filed it already."""


def retry_pause(rng: random.Random, jitter_ms: int) -> float:
    """Seconds to pause before the next attempt: floor(U[0,1) x jitter) milliseconds."""
    return int(rng.random() * jitter_ms) / 1000


def _make_parents(directory: Path, root: Path, modes: Modes) -> None:
    """mkdir -p `directory` with `modes.dir`, fsyncing each parent whose entries changed."""
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        if make_dir(folder, modes):
            fsync_dir(folder.parent)


def _scratch_copy(source: Path, directory: Path) -> Path:
    """A fsynced copy of `source` in `directory` (on the target's file system), with the mode
    the object was spooled with, as a rename would keep it."""
    scratch = directory / f".{source.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
    spooled = Modes(file=os.stat(source).st_mode & 0o777)
    try:
        with open(source, "rb") as src, open(open_new(scratch, spooled), "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    return scratch


def _commit(source: Path, target: Path, *, replace: bool) -> bool:
    """Make `source` appear at `target` in one step; False if `replace` is off and it exists.

    rename(2) replaces, link(2) does not; across file systems a scratch copy beside the target
    takes their place. The spool copy is removed only once the target is durable.
    """
    move = os.replace if replace else os.link
    try:
        move(source, target)
    except FileNotFoundError:
        if not source.exists():
            raise SourceGone(str(source)) from None
        raise
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        scratch = _scratch_copy(source, target.parent)
        try:
            move(scratch, target)
        except FileExistsError:
            return False
        finally:
            scratch.unlink(missing_ok=True)
    fsync_dir(target.parent)
    source.unlink(missing_ok=True)
    return True


def _place_once(source: Path, target: Path, root: Path, policy: str, modes: Modes) -> Placed:
    _make_parents(target.parent, root, modes)
    if _commit(source, target, replace=False):
        return Placed(target, "filed")
    if policy == duplicates.OVERWRITE:  # link(2) first, so that a replaced file is logged as such
        _commit(source, target, replace=True)
        return Placed(target, "overwritten")
    if policy == duplicates.KEEP_EXISTING:
        source.unlink()
        return Placed(target, "duplicate")
    existing = duplicates.archived_digest(target)  # a folder there raises: retried, as a rename
    digest = duplicates.dataset_digest(source)
    if existing == digest:
        source.unlink()
        return Placed(target, "duplicate")
    if policy == duplicates.QUARANTINE_IF_DIFFERENT:
        raise duplicates.DuplicateDiffers(target)
    other = duplicates.alternative(target, digest)
    if _commit(source, other, replace=False):
        return Placed(other, "filed")
    source.unlink()  # this very object was kept under the other name before
    return Placed(other, "duplicate")


def place(
    source: Path,
    target: Path,
    filing: Filing,
    *,
    rng: random.Random,
    modes: Modes = DEFAULT_MODES,
    sleep: Callable[[float], None] = time.sleep,
) -> Placed:
    """Move `source` to `target` (below `filing.directory`), applying `filing.duplicates`;
    folders it creates get `modes.dir`.

    Up to `filing.rename_retries` + 1 attempts, with a random pause of up to
    `filing.rename_retry_jitter` ms between them. Raises SourceGone if the object was filed by
    someone else, DuplicateDiffers (quarantine-if-different), or the last attempt's OSError.
    """
    root = Path(filing.directory)
    attempts = 0
    while True:
        attempts += 1
        try:
            placed = _place_once(source, target, root, filing.duplicates, modes)
        except SourceGone:
            raise
        except OSError:
            if attempts > filing.rename_retries:
                raise
            sleep(retry_pause(rng, filing.rename_retry_jitter))
            continue
        return Placed(placed.path, placed.outcome, attempts)
