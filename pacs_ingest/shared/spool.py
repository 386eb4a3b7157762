"""The spool: incoming/, ready/ and failed/, and the atomic, fsynced moves between them.

An object's life in the spool:

    incoming/<host>.<pid>/<name>.part      being received by one receiver process
    ready/<lane>/<bucket>/<name>.dcm       durable and acknowledged; waiting to be filed
    failed/<name>.dcm + <name>.json        could not be filed; the JSON says why
    attempts/<name>, <name>.json           a worker is filing it, or tried and failed (see
                                           workers.attempts); removed once it leaves ready/

Once an object is in ready/ it leaves only by being filed or quarantined, so ready/ is the truth
about what still has to be done, whatever Redis says. Each receiver process writes into its own
incoming/ subfolder, so the leftovers of a dead process can be told from a live one's work.

ready/ has one folder per lane (shared.lane: the objects filed with one set of filing options),
holding lane.json, those options, once for all its objects. Inside a lane, objects go into time
buckets, one folder per BUCKET_S seconds of arrival: recovery checks a bucket as a whole, and
never looks inside one that it already knows to be fully queued. An object is referred to by
its path below ready/ without the suffix, "<lane>/<bucket>/<name>" (a ref).

A process putting objects into a bucket first leaves its writer mark,
ready/<lane>/writing/<bucket>.<host>.<pid>, and removes it once it has queued every object it
put there (`settled`). A bucket with the mark of a dead process may hold objects nobody will
queue: recovery looks into it.
"""

import contextlib
import errno
import itertools
import os
import secrets
import shutil
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from pacs_ingest.shared.durable import copy_fsynced, fsync_dir, replace_fsynced
from pacs_ingest.shared.modes import DEFAULT_MODES, Modes, make_dir, make_dirs, open_new

READY_SUFFIX = ".dcm"
PART_SUFFIX = ".part"
LANE_RECORD = "lane.json"
BUCKET_S = 10
# In a bucket: some of its objects could not be queued (Redis was away) by a receiver that may
# die before it can queue them later; recovery then looks at every object of the bucket.
UNQUEUED_MARK = "unqueued"
WRITING = "writing"
# Another host's incoming/ folder untouched this long belongs to a dead receiver.
_FOREIGN_INCOMING_TTL_S = 3600.0


@dataclass(frozen=True, slots=True)
class ReadyObject:
    """An object in ready/: its ref ("<lane>/<bucket>/<name>"), its mtime (when its last byte
    was written, or when it was put into ready/ from elsewhere; a time.time() reading) and its
    size in bytes (file meta included)."""

    ref: str
    mtime: float
    size: int


class _ThisProcess:
    """This process's pid and the source of its spool names, renewed in a forked child.

    os.getpid() and uuid4() are system calls, and a receiver needed several per object. A name
    is 32 hex digits (what workers.drain accepts in a ref): 80 random bits drawn once per process,
    so no two processes of any host share them, then a count of the names this process made."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        self.pid = os.getpid()
        self._prefix = secrets.token_hex(10)
        self._names = itertools.count()

    def new_name(self) -> str:
        return f"{self._prefix}{next(self._names):012x}"


_this_process = _ThisProcess()


def new_name() -> str:
    """A spool name unique across processes and hosts."""
    return _this_process.new_name()


def bucket_at(now: float) -> str:
    """The time bucket of objects arriving at `now` (a time.time() reading)."""
    return str(int(now // BUCKET_S))


def bucket_closed(bucket: str, *, now: float, grace_s: float) -> bool:
    """True once no object can enter `bucket` any more and `grace_s` has passed since."""
    return (int(bucket) + 1) * BUCKET_S + grace_s <= now


def bucket_start(bucket: str) -> float:
    return float(int(bucket) * BUCKET_S)


class Spool:
    """One spool directory; every path inside it is built here."""

    def __init__(self, root: str | Path, modes: Modes = DEFAULT_MODES) -> None:
        self.root = Path(root).absolute()
        self.modes = modes  # of every file and folder created in the spool
        self.incoming = self.root / "incoming"
        self.ready = self.root / "ready"
        self.failed = self.root / "failed"
        self.attempts = self.root / "attempts"
        # The same folders as text: a worker builds two paths in them per object, and pathlib
        # parses each one it is given.
        self._ready_text = f"{self.ready}{os.sep}"
        self._attempts_text = f"{self.attempts}{os.sep}"
        self._process_incoming: tuple[int, Path] | None = None
        self._lock = threading.Lock()  # receivers make objects ready from several threads
        self._new_folders: set[Path] = set()  # created since the last sync_ready
        self._owed: dict[tuple[str, str], int] = {}  # (lane, bucket): refs not yet settled

    def __str__(self) -> str:
        return str(self.root)

    def create(self) -> None:
        for folder in (self.incoming, self.ready, self.failed, self.attempts):
            make_dirs(folder, self.modes)

    # -- receiving ---------------------------------------------------------------------------

    def process_incoming(self) -> Path:
        """This process's own incoming/ folder, created on first use."""
        pid = _this_process.pid
        if self._process_incoming is None or self._process_incoming[0] != pid:
            folder = self.incoming / f"{socket.gethostname()}.{pid}"
            make_dirs(folder, self.modes)
            self._process_incoming = (pid, folder)
        return self._process_incoming[1]

    def part_path(self, name: str) -> Path:
        return self.process_incoming() / (name + PART_SUFFIX)

    def ready_file(self, ref: str) -> str:
        """Where `ref` waits in ready/, as text (a worker builds it for every object)."""
        return self._ready_text + ref + READY_SUFFIX

    def ready_path(self, ref: str) -> Path:
        return Path(self.ready_file(ref))

    def _enter(self, lane: str, name: str, *, now: float, source: Path) -> str:
        """Rename `source` into the current bucket of `lane`; its ref, which the caller must
        settle once it is queued (or left to recovery)."""
        bucket = bucket_at(now)
        ref = f"{lane}/{bucket}/{name}"
        target = self.ready_file(ref)
        self._owe(lane, bucket)
        try:
            try:
                os.rename(source, target)
            except FileNotFoundError:
                if not source.exists():
                    raise
                folder = self.ready / lane / bucket
                make_dir(folder, self.modes)
                with self._lock:
                    self._new_folders.add(folder)
                os.rename(source, target)
        except OSError:
            self.settled([ref], now=now)
            raise
        return ref

    def _owe(self, lane: str, bucket: str) -> None:
        """Count one more ref of `bucket` to queue; the first leaves the writer mark, durably."""
        with self._lock:
            key = (lane, bucket)
            if key not in self._owed:
                folder = self.ready / lane / WRITING
                if not folder.is_dir():
                    make_dir(folder, self.modes)
                    fsync_dir(folder.parent)
                with contextlib.suppress(FileExistsError):
                    os.close(open_new(folder / self._writer_mark(bucket), self.modes))
                fsync_dir(folder)
            self._owed[key] = self._owed.get(key, 0) + 1

    @staticmethod
    def _writer_mark(bucket: str) -> str:
        return f"{bucket}.{socket.gethostname()}.{os.getpid()}"

    def settled(self, refs: Iterable[str], *, now: float | None) -> None:
        """This process no longer owes `refs` a push (queued, or left to recovery); writer marks
        of buckets owed nothing more go, except the current bucket's (None: that one too)."""
        current = None if now is None else bucket_at(now)
        with self._lock:
            for ref in refs:
                lane, bucket, _ = ref.split("/")
                if (lane, bucket) in self._owed:
                    self._owed[(lane, bucket)] -= 1
            for (lane, bucket), owed in list(self._owed.items()):
                if owed <= 0 and bucket != current:
                    (self.ready / lane / WRITING / self._writer_mark(bucket)).unlink(
                        missing_ok=True
                    )
                    del self._owed[(lane, bucket)]

    def make_ready(self, name: str, lane: str, *, now: float) -> str:
        """Move a complete, fsynced part file into the current bucket of `lane`; its ref.

        The caller must call `sync_ready` before it tells anyone the object is stored; it is
        separate so that concurrent stores can share one directory flush per bucket.
        """
        return self._enter(lane, name, now=now, source=self.part_path(name))

    def sync_ready(self, refs: Iterable[str]) -> None:
        """Make the entries of `refs` durable: one fsync per bucket, and of new buckets' lanes."""
        for bucket in {ref.rpartition("/")[0] for ref in refs}:  # "<lane>/<bucket>"
            fsync_dir(self._ready_text + bucket)
        with self._lock:
            created, self._new_folders = self._new_folders, set()
        for lane in {bucket.parent for bucket in created}:
            fsync_dir(lane)

    # -- lanes and buckets -------------------------------------------------------------------

    def open_lane(self, lane: str, record: bytes) -> None:
        """Create ready/<lane>/ with its lane.json durably, unless it exists already."""
        folder = self.ready / lane
        if (folder / LANE_RECORD).exists():
            return
        make_dirs(folder, self.modes)
        # Several processes may open the lane at once: each writes its own scratch file.
        scratch = folder / f"{LANE_RECORD}.{os.getpid()}.tmp"
        replace_fsynced(folder / LANE_RECORD, record, scratch, self.modes)
        fsync_dir(folder)
        fsync_dir(self.ready)

    def lane_record(self, lane: str) -> bytes:
        return (self.ready / lane / LANE_RECORD).read_bytes()

    def lanes(self) -> list[str]:
        with os.scandir(self.ready) as entries:
            return [entry.name for entry in entries if entry.is_dir()]

    def buckets(self, lane: str) -> list[str]:
        """The bucket folders of `lane`, oldest first."""
        with os.scandir(self.ready / lane) as entries:
            found = [entry.name for entry in entries if entry.name.isdigit()]
        return sorted(found, key=int)

    def bucket_names(self, lane: str, bucket: str) -> Iterator[str]:
        """The names of the objects waiting in one bucket."""
        with os.scandir(self.ready / lane / bucket) as entries:
            for entry in entries:
                if entry.name.endswith(READY_SUFFIX):
                    yield entry.name[: -len(READY_SUFFIX)]

    def bucket_tally(self, lane: str, bucket: str) -> tuple[list[str], int, float | None]:
        """The names of the objects waiting in one bucket, their bytes and their earliest mtime
        (None: empty), from one stat each (for recovery, which recounts what it lists)."""
        names = []
        size = 0
        earliest = None
        with os.scandir(self.ready / lane / bucket) as entries:
            for entry in entries:
                if entry.name.endswith(READY_SUFFIX):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:  # filed while we looked
                        continue
                    names.append(entry.name[: -len(READY_SUFFIX)])
                    size += stat.st_size
                    if earliest is None or stat.st_mtime < earliest:
                        earliest = stat.st_mtime
        return names, size, earliest

    def ready_object(self, ref: str) -> ReadyObject | None:
        """`ref` as it is in ready/ now; None if it has left."""
        try:
            stat = os.stat(self.ready_path(ref))
        except FileNotFoundError:
            return None
        return ReadyObject(ref, stat.st_mtime, stat.st_size)

    def remove_bucket_if_empty(self, lane: str, bucket: str) -> bool:
        try:
            os.rmdir(self.ready / lane / bucket)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False
            if exc.errno != errno.ENOENT:
                raise
        return True

    def writer_marks(self, lane: str) -> dict[str, list[str]]:
        """bucket -> the writer marks left on it (see `settled`)."""
        marks: dict[str, list[str]] = {}
        try:
            with os.scandir(self.ready / lane / WRITING) as entries:
                for entry in entries:
                    marks.setdefault(entry.name.partition(".")[0], []).append(entry.name)
        except FileNotFoundError:
            pass
        return marks

    def writer_alive(self, lane: str, mark: str, *, now: float) -> bool:
        """Whether the process that left `mark` may still queue what it put in the bucket; for
        another host's process, whether the mark is younger than an hour."""
        _, _, writer = mark.partition(".")
        host, _, pid = writer.rpartition(".")
        if host == socket.gethostname() and pid.isdigit():
            return _pid_alive(int(pid))
        try:
            age = now - (self.ready / lane / WRITING / mark).stat().st_mtime
        except FileNotFoundError:
            return False
        return age <= _FOREIGN_INCOMING_TTL_S

    def remove_writer_mark(self, lane: str, mark: str) -> None:
        (self.ready / lane / WRITING / mark).unlink(missing_ok=True)

    def mark_unqueued(self, refs: Iterable[str]) -> None:
        """Record, durably, that the buckets of `refs` hold objects no one may ever queue."""
        for bucket in {self.ready_path(ref).parent for ref in refs}:
            if (bucket / UNQUEUED_MARK).exists():
                continue
            with contextlib.suppress(FileExistsError):
                fd = open_new(bucket / UNQUEUED_MARK, self.modes)
                os.fsync(fd)
                os.close(fd)
            fsync_dir(bucket)

    def unqueued_marked(self, lane: str, bucket: str) -> bool:
        return (self.ready / lane / bucket / UNQUEUED_MARK).exists()

    def clear_unqueued(self, lane: str, bucket: str) -> None:
        (self.ready / lane / bucket / UNQUEUED_MARK).unlink(missing_ok=True)

    def ready_count(self, *, stop_after: int) -> int:
        """How many objects wait in ready/, counting no further than `stop_after` + 1: the cost
        is bounded by the question (is the backlog over a limit?), not by the backlog."""
        count = 0
        for lane in self.lanes():
            for bucket in self.buckets(lane):
                for _ in self.bucket_names(lane, bucket):
                    count += 1
                    if count > stop_after:
                        return count
        return count

    def failed_totals(self) -> tuple[int, int]:
        """(objects, bytes) in failed/, for recovery's recount (failed/ stays small)."""
        objects = size = 0
        try:
            with os.scandir(self.failed) as entries:
                for entry in entries:
                    if entry.name.endswith(READY_SUFFIX):
                        try:
                            size += entry.stat().st_size
                        except FileNotFoundError:  # reprocessed while we looked
                            continue
                        objects += 1
        except FileNotFoundError:  # nothing has failed on this spool yet
            pass
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

    def failed_path(self, ref: str) -> Path:
        return self.failed / (ref.rpartition("/")[2] + READY_SUFFIX)

    def quarantine(self, ref: str, reason: dict[str, Any]) -> Path:
        """Move ready/<ref> to failed/ with a JSON file beside it that says why.

        The reason is written first, so a crash in between leaves the object in ready/ (to be
        tried again) rather than an unexplained object in failed/.
        """
        make_dir(self.failed, self.modes)
        reason_path = self.failed_path(ref).with_suffix(".json")
        data = orjson.dumps(reason, option=orjson.OPT_INDENT_2, default=str)
        replace_fsynced(reason_path, data, reason_path.with_suffix(".json.tmp"), self.modes)
        target = self.failed_path(ref)
        os.rename(self.ready_path(ref), target)
        fsync_dir(self.failed)
        self.remove_attempt_marks(ref)
        return target

    def attempt_marks(self) -> list[tuple[str, Path]]:
        """(ref, path) of every attempt mark, of whatever form."""
        try:
            entries = os.listdir(self.attempts)
        except FileNotFoundError:
            return []
        return [
            (
                entry.removesuffix(".tmp").removesuffix(".json").replace(".", "/"),
                self.attempts / entry,
            )
            for entry in entries
        ]

    def attempt_link_file(self, ref: str) -> str:
        """A hard link to ready/<ref>: the mark of a first attempt (see workers.attempts)."""
        # One flat folder: the ref's slashes become dots (no part of a ref holds a dot).
        return self._attempts_text + ref.replace("/", ".")

    def attempt_link_path(self, ref: str) -> Path:
        return Path(self.attempt_link_file(ref))

    def attempt_path(self, ref: str) -> Path:
        """The record of the attempts at `ref` after the first (see workers.attempts)."""
        return Path(self.attempt_link_file(ref) + ".json")

    def remove_attempt_link(self, ref: str) -> None:
        """Remove the mark of a first attempt, where it is the only one (see workers.attempts)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.attempt_link_file(ref))

    def remove_attempt_marks(self, ref: str) -> None:
        self.remove_attempt_link(ref)
        self.attempt_path(ref).unlink(missing_ok=True)

    def unquarantine(self, lane: str, *, now: float) -> list[str]:
        """Move every object in failed/ back into `lane` (reason files removed); their refs."""
        refs = []
        for path in sorted(self.failed.glob("*" + READY_SUFFIX)):
            os.utime(path)  # its wait in ready/ (the oldest unfiled age) starts now
            refs.append(self._enter(lane, path.name[: -len(READY_SUFFIX)], now=now, source=path))
        if refs:
            self.sync_ready(refs)
            fsync_dir(self.failed)
        for ref in refs:
            self.failed_path(ref).with_suffix(".json").unlink(missing_ok=True)
        return refs

    def admit(self, source: Path, lane: str, *, move: bool, now: float) -> str:
        """Put an external Part 10 file into `lane`; its ref. Durable once `sync_ready` has run
        on the ref, except across file systems with `move`, where it is durable at once.

        `move` renames it in when it is on the spool's file system (else copies it, then removes
        the original once the copy is durable); otherwise the original stays untouched.
        """
        name = new_name()
        if move:
            try:
                ref = self._enter(lane, name, now=now, source=source)
                os.utime(self.ready_path(ref))  # its wait in ready/ starts now
                return ref
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        part = self.part_path(name)
        try:
            copy_fsynced(source, part, self.modes)
            ref = self._enter(lane, name, now=now, source=part)
        finally:
            part.unlink(missing_ok=True)
        if move:
            self.sync_ready([ref])
            source.unlink()
        return ref

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
