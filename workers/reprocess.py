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

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rq import Queue
from watchfiles import watch

from shared import log, part10
from shared.jobs import DrainJob, Filing
from shared.lane import open_lane, push
from shared.options import Option
from shared.processes import StopSignal
from shared.queue import connect, ingest_queue
from shared.spool import Spool

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


def _admit_all(spool: Spool, lane: str, paths: Iterable[Path], *, move: bool) -> list[str]:
    refs = []
    for path in paths:
        if is_part10(path):
            refs.append(spool.admit(path, lane, move=move, now=time.time()))
        else:
            log.warning("reprocess.skipped", path=str(path), why="not a DICOM Part 10 file")
    spool.sync_ready(refs)
    return refs


def _push(rq_queue: Queue, job: DrainJob, refs: list[str]) -> None:
    push(rq_queue, job, [ref.partition("/")[2] for ref in refs], now=time.time())


def _eligible(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(_IGNORED_SUFFIXES)


def _watch(
    spool: Spool, rq_queue: Queue, job: DrainJob, settings: ReprocessSettings, stop: StopSignal
) -> None:
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
        refs = _admit_all(spool, job.lane, (p for p in settled if p.is_file()), move=True)
        if refs:
            _push(rq_queue, job, refs)
            log.event("reprocess.watched", objects=len(refs))


def reprocess(settings: ReprocessSettings) -> int:
    stop = StopSignal().install()
    spool = Spool(settings.spool_dir)
    spool.create()
    Path(settings.filing.directory).mkdir(parents=True, exist_ok=True)  # as receivers do
    rq_queue = ingest_queue(connect(settings.redis_url), settings.queue)
    job = DrainJob(str(spool), open_lane(spool, settings.filing))
    refs = spool.unquarantine(job.lane, now=time.time()) if settings.failed else []
    refs += _admit_all(spool, job.lane, _files(settings.imports), move=settings.move)
    _push(rq_queue, job, refs)
    log.event("reprocess.enqueued", objects=len(refs), spool=str(spool))
    if settings.watch:
        _watch(spool, rq_queue, job, settings, stop)
    return 0
