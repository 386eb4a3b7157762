"""`pacs-ingest reprocess`: send objects through filing again.

- `--failed`: everything in the spool's failed/ goes back to ready/ (after you fixed the cause:
  a pattern, a permission, a full disk that was not recognised as such).
- `--import PATH...`: Part 10 files from any folder tree (another archive, a USB export, this
  archive with a new --filepath) are copied into the spool, or moved with `--move`.
- `--watch DIR...`: a hot folder. Files that stop changing for two seconds are moved into the
  spool and filed; names starting with "." or ending in .part or .tmp are left for their writer.

Every object goes through ready/ first, so it is durable before its job is enqueued, and it is
filed with the filing options given to this command.
"""

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from rq import Queue
from watchfiles import watch

from shared import log, part10
from shared.jobs import Filing, enqueue_names
from shared.modes import Modes, make_dirs
from shared.options import Option
from shared.processes import StopSignal
from shared.queue import connect, ingest_queue
from shared.spool import ReadyObject, Spool
from shared.spool_counts import count_ready

_SETTLE_S = 2.0
_IGNORED_SUFFIXES = (".part", ".tmp")


REPROCESS = "reprocess"
ROWS = (
    Option(
        ("--failed",),
        "move every object in failed/ back to ready/ and file it again",
        REPROCESS,
        kind="flag",
    ),
    Option(
        ("--import",),
        "file the DICOM files in these files or folder trees",
        REPROCESS,
        type=str,
        kind="multi",
        metavar="path",
    ),
    Option(
        ("--move",),
        "move imported files into the spool instead of copying them",
        REPROCESS,
        kind="flag",
    ),
    Option(
        ("--watch",),
        "hot folders: file whatever appears in them, until stopped",
        REPROCESS,
        type=str,
        kind="multi",
        metavar="dir",
    ),
)


@dataclass(frozen=True, slots=True)
class ReprocessSettings:
    spool_dir: str
    modes: Modes
    filing: Filing
    failed: bool
    imports: tuple[str, ...]
    watch: tuple[str, ...]
    move: bool
    redis_url: str
    queue: str


def is_part10(path: Path) -> bool:
    try:
        with open(path, "rb") as fp:
            part10.dataset_offset(fp.read(144))
    except (OSError, part10.FileMetaError):
        return False
    return True


def _files(roots: Iterable[str]) -> Iterator[Path]:
    for root in roots:
        if os.path.isfile(root):
            yield Path(root)
            continue
        for folder, _, names in os.walk(root):
            for name in sorted(names):
                yield Path(folder, name)


def _admit_all(spool: Spool, paths: Iterable[Path], *, move: bool) -> list[str]:
    names = []
    for path in paths:
        if is_part10(path):
            names.append(spool.admit(path, move=move))
        else:
            log.warning("reprocess.skipped", path=str(path), why="not a DICOM Part 10 file")
    return names


def _count_ready(connection: Redis, spool: Spool, names: list[str], *, from_failed: bool) -> None:
    """Add what was just put into ready/ to the spool's counts (shared.spool_counts)."""
    objects = []
    for name in names:
        with contextlib.suppress(FileNotFoundError):  # filed already
            stat = os.stat(spool.ready_path(name))
            objects.append(ReadyObject(name, stat.st_mtime, stat.st_size))
    with connection.pipeline() as pipe:
        count_ready(pipe, str(spool), objects, from_failed=from_failed)
        pipe.execute()


def _eligible(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(_IGNORED_SUFFIXES)


def _watch(spool: Spool, rq_queue: Queue, settings: ReprocessSettings, stop: StopSignal) -> None:
    # Files already in the folder count as changed now: one may still be being written.
    start = time.monotonic()
    changed = {path: start for path in _files(settings.watch) if _eligible(path)}
    for changes in watch(
        *settings.watch, stop_event=stop, yield_on_timeout=True, rust_timeout=1000
    ):
        now = time.monotonic()
        for _, raw in changes:
            if _eligible(path := Path(raw)):
                changed[path] = now
        settled = [p for p, at in changed.items() if now - at >= _SETTLE_S]
        for path in settled:
            del changed[path]
        names = _admit_all(spool, (p for p in settled if p.is_file()), move=True)
        if names:
            _count_ready(rq_queue.connection, spool, names, from_failed=False)
            enqueue_names(rq_queue, str(spool), settings.filing, names)
            log.event("reprocess.watched", objects=len(names))


def reprocess(settings: ReprocessSettings) -> int:
    stop = StopSignal().install()
    spool = Spool(settings.spool_dir, settings.modes)
    spool.create()
    make_dirs(Path(settings.filing.directory), settings.modes)  # as receivers do
    rq_queue = ingest_queue(connect(settings.redis_url), settings.queue)
    unquarantined = spool.unquarantine() if settings.failed else []
    _count_ready(rq_queue.connection, spool, unquarantined, from_failed=True)
    imported = _admit_all(spool, _files(settings.imports), move=settings.move)
    _count_ready(rq_queue.connection, spool, imported, from_failed=False)
    names = unquarantined + imported
    enqueue_names(rq_queue, str(spool), settings.filing, names)
    log.event("reprocess.enqueued", objects=len(names), spool=str(spool))
    if settings.watch:
        _watch(spool, rq_queue, settings, stop)
    return 0
