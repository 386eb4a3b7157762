"""The spool: incoming/, ready/ and failed/, and the atomic, fsynced moves between them.

An object's life in the spool:

    incoming/<host>.<pid>/<name>.part   being received by one receiver process
    ready/<name>.dcm                    durable and acknowledged; waiting to be filed
    failed/<name>.dcm + <name>.json     could not be filed; the JSON says why
    attempts/<name>, <name>.json        a worker is filing it, or tried and failed (see
                                        workers.attempts); removed once it leaves ready/

Once an object is in ready/ it leaves only by being filed or quarantined, so ready/ is the truth
about what still has to be done, whatever Redis says. Each receiver process writes into its own
incoming/ subfolder, so the leftovers of a dead process can be told from a live one's work.
"""

import contextlib
import errno
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shared.modes import DEFAULT_MODES, Modes, make_dir, make_dirs, open_new

READY_SUFFIX = ".dcm"
PART_SUFFIX = ".part"
# Another host's incoming/ folder untouched this long belongs to a dead receiver.
_FOREIGN_INCOMING_TTL_S = 3600.0


def fsync_dir(path: Path) -> None:
    """Make the entries of directory `path` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class ReadyObject:
    """An object in ready/: its spool name, its mtime (when its last byte was written, a
    time.time() reading) and its size in bytes (file meta included)."""

    name: str
    mtime: float
    size: int


def new_name() -> str:
    """A spool name unique across processes and hosts."""
    return uuid.uuid4().hex


class Spool:
    """One spool directory; every path inside it is built here."""

    def __init__(self, root: str | Path, modes: Modes = DEFAULT_MODES) -> None:
        self.root = Path(root).absolute()
        self.modes = modes  # of every file and folder created in the spool
        self.incoming = self.root / "incoming"
        self.ready = self.root / "ready"
        self.failed = self.root / "failed"
        self.attempts = self.root / "attempts"
        self._process_incoming: tuple[int, Path] | None = None

    def __str__(self) -> str:
        return str(self.root)

    def create(self) -> None:
        for folder in (self.incoming, self.ready, self.failed, self.attempts):
            make_dirs(folder, self.modes)

    # -- receiving ---------------------------------------------------------------------------

    def process_incoming(self) -> Path:
        """This process's own incoming/ folder, created on first use."""
        if self._process_incoming is None or self._process_incoming[0] != os.getpid():
            folder = self.incoming / f"{socket.gethostname()}.{os.getpid()}"
            make_dirs(folder, self.modes)
            self._process_incoming = (os.getpid(), folder)
        return self._process_incoming[1]

    def part_path(self, name: str) -> Path:
        return self.process_incoming() / (name + PART_SUFFIX)

    def ready_path(self, name: str) -> Path:
        return self.ready / (name + READY_SUFFIX)

    def make_ready(self, name: str) -> Path:
        """Move a complete, fsynced part file into ready/.

        The caller must fsync ready/ (see `sync_ready`) before it tells anyone the object is
        stored; it is separate so that concurrent stores can share one directory flush.
        """
        target = self.ready_path(name)
        os.rename(self.part_path(name), target)
        return target

    def sync_ready(self) -> None:
        fsync_dir(self.ready)

    # -- filing ------------------------------------------------------------------------------

    def ready_objects(self) -> Iterator[ReadyObject]:
        """Every object waiting in ready/ (one stat each: for the sweep, never for status)."""
        with os.scandir(self.ready) as entries:
            for entry in entries:
                if entry.name.endswith(READY_SUFFIX):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:  # filed while we looked
                        continue
                    yield ReadyObject(entry.name[: -len(READY_SUFFIX)], stat.st_mtime, stat.st_size)

    def failed_totals(self) -> tuple[int, int]:
        """(objects, bytes) in failed/, for the sweep's recount."""
        objects = size = 0
        with os.scandir(self.failed) as entries:
            for entry in entries:
                if entry.name.endswith(READY_SUFFIX):
                    try:
                        size += entry.stat().st_size
                    except FileNotFoundError:  # reprocessed while we looked
                        continue
                    objects += 1
        return objects, size

    def incoming_totals(self) -> tuple[int, int]:
        """(objects, bytes) being received now, on every host. Bounded by the stores in flight
        (a receiver process holds at most a few part files per association), not by the
        backlog, so `status` may read it on every call."""
        objects = size = 0
        for folder in os.scandir(self.incoming):
            for part_size in _part_sizes(folder.path):
                objects += 1
                size += part_size
        return objects, size

    def ready_count(self) -> int:
        """How many objects wait in ready/ (no stat per entry, unlike ready_objects)."""
        with os.scandir(self.ready) as entries:
            return sum(1 for entry in entries if entry.name.endswith(READY_SUFFIX))

    def failed_path(self, name: str) -> Path:
        return self.failed / (name + READY_SUFFIX)

    def quarantine(self, name: str, reason: dict[str, Any]) -> Path:
        """Move ready/<name> to failed/ with a JSON file beside it that says why.

        The reason is written first, so a crash in between leaves the object in ready/ (to be
        tried again) rather than an unexplained object in failed/.
        """
        make_dir(self.failed, self.modes)
        reason_path = self.failed / (name + ".json")
        scratch = reason_path.with_suffix(".json.tmp")
        scratch.unlink(missing_ok=True)  # left by a crash in an earlier attempt
        with open(open_new(scratch, self.modes), "wb") as f:
            f.write(orjson.dumps(reason, option=orjson.OPT_INDENT_2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(scratch, reason_path)
        target = self.failed_path(name)
        os.rename(self.ready_path(name), target)
        fsync_dir(self.failed)
        self.remove_attempt_marks(name)
        return target

    def attempt_marks(self) -> list[tuple[str, Path]]:
        """(object name, path) of every attempt mark, of whatever form."""
        try:
            entries = os.listdir(self.attempts)
        except FileNotFoundError:
            return []
        return [
            (entry.removesuffix(".tmp").removesuffix(".json"), self.attempts / entry)
            for entry in entries
        ]

    def attempt_link_path(self, name: str) -> Path:
        """A hard link to ready/<name>: the mark of a first attempt (see workers.attempts)."""
        return self.attempts / name

    def attempt_path(self, name: str) -> Path:
        """The record of the attempts at `name` after the first (see workers.attempts)."""
        return self.attempts / (name + ".json")

    def remove_attempt_marks(self, name: str) -> None:
        self.attempt_link_path(name).unlink(missing_ok=True)
        self.attempt_path(name).unlink(missing_ok=True)

    def unquarantine(self) -> list[str]:
        """Move every object in failed/ back to ready/ (reason files removed); their names."""
        names = []
        for path in sorted(self.failed.glob("*" + READY_SUFFIX)):
            name = path.name[: -len(READY_SUFFIX)]
            os.utime(path)  # its wait in ready/ (oldest unfiled) starts now
            os.rename(path, self.ready_path(name))
            names.append(name)
        if names:
            fsync_dir(self.ready)
            fsync_dir(self.failed)
        for name in names:
            (self.failed / (name + ".json")).unlink(missing_ok=True)
        return names

    def admit(self, source: Path, *, move: bool) -> str:
        """Put an external Part 10 file into ready/, durably; its spool name.

        `move` renames it in when it is on the spool's file system (else copies it, then removes
        the original once the copy is durable); otherwise the original stays untouched.
        """
        name = new_name()
        target = self.ready_path(name)
        if move:
            try:
                os.rename(source, target)
                os.chmod(target, self.modes.file)
                os.utime(target)  # its wait in ready/ (oldest unfiled) starts now
                fsync_dir(self.ready)
                fsync_dir(source.parent)
                return name
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        part = self.part_path(name)
        try:
            with open(source, "rb") as src, open(open_new(part, self.modes), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            os.rename(part, target)
        finally:
            part.unlink(missing_ok=True)
        fsync_dir(self.ready)
        if move:
            source.unlink()
        return name

    # -- recovery ----------------------------------------------------------------------------

    def remove_dead_incoming(self, *, now: float) -> list[Path]:
        """Remove the incoming/ folders of receiver processes that no longer run.

        On this host a folder is dead when its process is; another host's folder when nothing in
        it changed for an hour. `now` is a time.time() reading.
        """
        host = socket.gethostname()
        removed = []
        for folder in self.incoming.iterdir():
            folder_host, _, pid = folder.name.rpartition(".")
            if folder_host == host and pid.isdigit():
                dead = not _pid_alive(int(pid))
            else:
                dead = now - _newest_mtime(folder) > _FOREIGN_INCOMING_TTL_S
            if dead:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        return removed


def _part_sizes(folder: str) -> Iterator[int]:
    """The sizes of the part files in one receiver process's incoming/ folder."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.endswith(PART_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):  # complete while we looked
                        yield entry.stat().st_size
    except (FileNotFoundError, NotADirectoryError):  # its receiver is gone
        return


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for entry in os.scandir(folder):
        try:
            newest = max(newest, entry.stat().st_mtime)
        except FileNotFoundError:
            continue
    return newest
