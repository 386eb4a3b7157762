"""The permissions of the files and folders pacs-ingest creates: they hold patient data.

Defaults are 0640 for files and 0750 for folders (owner reads and writes, its group reads, others
nothing). The modes are applied exactly as given, whatever the process umask: a file or folder is
created with its mode and then set to it, since a umask would only ever take bits away. A file is
set only when the umask takes bits from its mode: a receiver creates a file per object, and the
usual umasks (0022, 0027) leave 0640 whole.
"""

import argparse
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from pacs_ingest.shared.options import Option


class Mode(int):
    """A permission mode; prints in octal, as chmod takes it (and as -h shows the default)."""

    def __str__(self) -> str:
        return f"0{self:o}"


DEFAULT_FILE_MODE = Mode(0o640)
DEFAULT_DIR_MODE = Mode(0o750)


def octal_mode(text: str) -> Mode:
    """A permission mode in octal, e.g. 0640 or 640; no setuid, setgid or sticky bits."""
    try:
        value = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid mode {text!r}: give octal digits, e.g. 0640"
        ) from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"invalid mode {text!r}: at most 0777")
    return Mode(value)


@dataclass(frozen=True, slots=True)
class Modes:
    file_mode: int = DEFAULT_FILE_MODE
    dir_mode: int = DEFAULT_DIR_MODE


DEFAULT_MODES = Modes()


def make_dir(path: Path, modes: Modes) -> bool:
    """mkdir `path` (its parent must exist) with `modes.dir_mode`; False if it existed already."""
    try:
        os.mkdir(path, modes.dir_mode)
    except FileExistsError:
        return False
    os.chmod(path, modes.dir_mode)
    return True


def make_dirs(path: Path, modes: Modes) -> None:
    """mkdir -p `path`: each folder it creates gets `modes.dir_mode`; existing ones are kept."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        make_dir(folder, modes)


@functools.cache
def _umask() -> int | None:
    """This process's umask, read once (pacs-ingest never changes it; were it widened later, a
    file could only come out with fewer bits than asked, never more); None if unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return None


def open_new(path: Path, modes: Modes, flags: int = 0) -> int:
    """Create `path` (it must not exist) for writing with `modes.file_mode`; the descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | flags, modes.file_mode)
    umask = _umask()
    if umask is None or modes.file_mode & umask:
        try:
            os.fchmod(fd, modes.file_mode)
        except BaseException:
            os.close(fd)
            raise
    return fd


MODES = "permissions"
ROWS = (
    Option(
        ("--file-mode",),
        "permissions of the files created in the spool and the archive (octal)",
        MODES,
        type=octal_mode,
        default=DEFAULT_FILE_MODE,
        metavar="mode",
    ),
    Option(
        ("--dir-mode",),
        "permissions of the folders created in the spool and the archive (octal)",
        MODES,
        type=octal_mode,
        default=DEFAULT_DIR_MODE,
        metavar="mode",
    ),
)
