"""Move a spooled object to its place in the archive: atomically, durably, with retries.

Within one file system a link(2) does it (or rename(2), when --duplicates overwrite replaces a
file). Across file systems (EXDEV) we copy into a scratch file beside the target, fsync it, and
link or rename that into place. The spool copy is removed only once the target is durable; a
crash at any point leaves the object in the spool (to be filed again) or in the archive, and
filing it again is harmless.

A batch of objects is made durable together (a Settlement): each folder that gained an entry is
fsynced once for the whole batch, then the batch's spool copies are removed. Objects of one
series share their folder, so a batch costs a few fsyncs instead of one per object.
"""

import errno
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pacs_ingest.shared.durable import copy_fsynced, fsync_dir
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.metrics import RENAME_RETRIES
from pacs_ingest.shared.modes import DEFAULT_MODES, Modes, make_dir
from pacs_ingest.workers import duplicates

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


@lru_cache(maxsize=64)
def archive_root(directory: str) -> Path:
    """`directory` (a Filing's archive root) as a Path, made once rather than per object."""
    return Path(directory)


def retry_pause(rng: random.Random, jitter_ms: int) -> float:
    """Seconds to pause before the next attempt: floor(U[0,1) x jitter) milliseconds."""
    return int(rng.random() * jitter_ms) / 1000


class Settlement:
    """The folders a batch of placements changed and the spool copies it may then remove; the
    folders it makes get `modes.dir_mode`."""

    def __init__(self, modes: Modes = DEFAULT_MODES) -> None:
        self.modes = modes
        self._changed: dict[Path, None] = {}  # insertion-ordered set
        self._sources: list[Path] = []

    def changed(self, directory: Path) -> None:
        self._changed[directory] = None

    def release(self, source: Path) -> None:
        """Remove `source` once everything placed so far is durable."""
        self._sources.append(source)

    def finish(self) -> None:
        """fsync every changed folder once, then remove the released spool copies. An fsync
        that fails raises before any copy is removed: the batch is filed again later."""
        changed, self._changed = self._changed, {}
        for directory in changed:
            fsync_dir(directory)
        sources, self._sources = self._sources, []
        for source in sources:
            source.unlink(missing_ok=True)


def _make_parents(directory: Path, root: Path, settlement: Settlement) -> None:
    """mkdir -p `directory` with the settlement's folder mode; each parent whose entries changed
    is fsynced with the batch."""
    missing = []
    while not directory.exists() and directory != root:
        missing.append(directory)
        directory = directory.parent
    for folder in reversed(missing):
        if make_dir(folder, settlement.modes):
            settlement.changed(folder.parent)


def _scratch_copy(source: Path, directory: Path) -> Path:
    """A fsynced copy of `source` in `directory` (on the target's file system), with the mode
    the object was spooled with, as a rename would keep it."""
    scratch = directory / f".{source.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp"
    copy_fsynced(source, scratch, Modes(file_mode=os.stat(source).st_mode & 0o777))
    return scratch


def _commit(source: Path, target: Path, settlement: Settlement, *, replace: bool) -> bool:
    """Make `source` appear at `target` in one step; False if `replace` is off and it exists.

    link(2) does not replace, rename(2) does; across file systems a scratch copy beside the
    target takes their place. A link leaves the spool copy to the settlement, which removes it
    once the target is durable; a rename took the spool copy away, so its folder is fsynced at
    once (as rare as --duplicates overwrite finding a file).
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
    if replace:
        fsync_dir(target.parent)
    else:
        settlement.changed(target.parent)
    settlement.release(source)
    return True


def _place_once(
    source: Path, target: Path, root: Path, policy: str, settlement: Settlement
) -> Placed:
    try:  # into an existing folder, as most objects of a series go: no look before
        committed = _commit(source, target, settlement, replace=False)
    except SourceGone:
        raise
    except FileNotFoundError:  # its folder is new
        _make_parents(target.parent, root, settlement)
        committed = _commit(source, target, settlement, replace=False)
    if committed:
        return Placed(target, "filed")
    if policy == duplicates.OVERWRITE:  # link(2) first, so that a replaced file is logged as such
        _commit(source, target, settlement, replace=True)
        return Placed(target, "overwritten")
    if policy == duplicates.KEEP_EXISTING:
        settlement.release(source)
        return Placed(target, "duplicate")
    existing = duplicates.archived_digest(target)  # a folder there raises: retried, as a rename
    digest = duplicates.dataset_digest(source)
    if existing == digest:
        settlement.release(source)
        return Placed(target, "duplicate")
    if policy == duplicates.QUARANTINE_IF_DIFFERENT:
        raise duplicates.DuplicateDiffers(target)
    other = duplicates.alternative(target, digest)
    if _commit(source, other, settlement, replace=False):
        return Placed(other, "filed")
    settlement.release(source)  # this very object was kept under the other name before
    return Placed(other, "duplicate")


def place(
    source: Path,
    target: Path,
    filing: Filing,
    *,
    rng: random.Random,
    settlement: Settlement | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Placed:
    """Move `source` to `target` (below `filing.directory`), applying `filing.duplicates`.

    Durable on return, or, given a `settlement`, once the caller finishes it. Up to
    `filing.rename_retries` + 1 attempts, with a random pause of up to
    `filing.rename_retry_jitter` ms between them. Raises SourceGone if the object was filed by
    someone else, DuplicateDiffers (quarantine-if-different), or the last attempt's OSError.
    """
    if settlement is None:
        settlement = Settlement()
        placed = place(source, target, filing, rng=rng, settlement=settlement, sleep=sleep)
        settlement.finish()
        return placed
    root = archive_root(filing.directory)
    attempts = 0
    while True:
        attempts += 1
        try:
            placed = _place_once(source, target, root, filing.duplicates, settlement)
        except SourceGone:
            raise
        except OSError:
            if attempts > filing.rename_retries or not root.is_dir():
                raise  # no pause for an archive root that is gone: the storage is not there
            RENAME_RETRIES.inc()  # rare: counted as it happens, also when the last one fails
            sleep(retry_pause(rng, filing.rename_retry_jitter))
            continue
        return Placed(placed.path, placed.outcome, attempts)
