"""What makes a file system change survive a crash: fsync a folder's entries, a fsynced copy,
a file replaced whole; and what makes a later fsync quicker: writeback started early.

The spool (importing into ready/) and the workers (filing across file systems) both copy an
object and must not rename the copy into place before its bytes are on disk.
"""

import ctypes
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pacs_ingest.shared.modes import Modes, open_new

_COPY_CHUNK = 1 << 20
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writing the range's dirty pages, do not wait


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """Linux's sync_file_range(2), which the os module does not offer; None without it."""
    function = getattr(ctypes.CDLL(None), "sync_file_range", None)
    if function is not None:
        function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        function.restype = ctypes.c_int
    return function


_sync_file_range_call = _sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing `length` bytes of `fd` from `offset` to disk, without waiting for them.

    The fsync that makes a file durable waits for its data to reach the disk; begun as soon as
    the data is written, that transfer overlaps with whatever comes before the fsync (a receiver
    hands the file to another thread first), so the fsync waits less. Nothing is promised: on a
    system without sync_file_range, or if it fails, the fsync does it all, and reports any error.
    """
    if _sync_file_range_call is not None:
        _sync_file_range_call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def fsync_dir(path: Path | str) -> None:
    """Make the entries of directory `path` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_fsynced(target: Path, data: bytes, scratch: Path, modes: Modes) -> None:
    """Write `data` to `scratch`, fsync it and rename it over `target`: readers see the old
    file or the new one, never a part. A `scratch` left by a crash is overwritten, so it must
    be this writer's own name. The folder's entry is the caller's to fsync."""
    scratch.unlink(missing_ok=True)
    with open(open_new(scratch, modes), "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(scratch, target)


def copy_fsynced(source: Path, target: Path, modes: Modes) -> None:
    """Copy `source` to the new file `target` (it must not exist, it gets `modes.file_mode`) and
    fsync it; a failed copy leaves no `target` behind. The folder's entry is the caller's to
    fsync, usually after renaming `target` into place."""
    try:
        with open(source, "rb") as src, open(open_new(target, modes), "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
