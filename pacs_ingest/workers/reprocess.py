"""`pacs-ingest reprocess`: send objects through filing again.

- `--failed`: everything in the spool's failed/ goes back to ready/ (after you fixed the cause:
  a pattern, a permission, a full disk that was not recognised as such).
- `--import PATH...`: Part 10 files from any folder tree (another archive, a USB export) are
  copied into the spool, or moved with `--move`.
- `--resort`: the archive at --directory is re-sorted in place into --filepath (workers.resort).
- `--watch DIR...`: a hot folder. Files that stop changing for two seconds are moved into the
  spool and filed; names starting with "." or ending in .part or .tmp are left for their writer.

Every object goes through ready/ first, so it is durable before it is queued, and it is filed
with the filing options given to this command. Trees are streamed (workers.tree): files are
queued in batches while the walk goes on (workers.admission), with progress on stderr
(workers.progress) and a summary on stdout. Stopped (Ctrl-C, SIGTERM) it queues what it has
admitted, prints the summary and exits 130; run again, it carries on: moved files are not found
twice, and copied files found twice are dropped as identical duplicates by the default
--duplicates keep-both.
"""

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from watchfiles import watch

from pacs_ingest.shared import log, part10
from pacs_ingest.shared.exit_codes import ExitCode
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob, SweepJob, enqueue_sweep, register_spool
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.modes import Modes, make_dirs
from pacs_ingest.shared.options import Option, StartupError, from_options
from pacs_ingest.shared.processes import StopSignal
from pacs_ingest.shared.queue import connect, ingest_queue
from pacs_ingest.shared.spool import Spool
from pacs_ingest.shared.spool_counts import count_unquarantined
from pacs_ingest.workers.admission import Admission, Run
from pacs_ingest.workers.progress import Counts, ProgressReport
from pacs_ingest.workers.resort import resort_one
from pacs_ingest.workers.tree import walk_files

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
        ("--resort",),
        "re-sort the archive at --directory in place into --filepath; safe to stop and rerun",
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
    resort: bool
    watch: tuple[str, ...]
    move: bool
    redis_url: str
    queue: str

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ReprocessSettings":
        return from_options(
            cls,
            args,
            modes=from_options(Modes, args),
            filing=Filing.from_args(args),
            imports=getattr(args, "import"),  # a keyword, so not a field name
        )


def _import_one(run: Run, path: Path, *, move: bool) -> None:
    if not part10.is_part10_file(path):
        run.counts.not_dicom += 1
        log.warning("reprocess.skipped", path=str(path), why="not a DICOM Part 10 file")
        return
    run.admission.add(
        run.spool.admit(path, run.lane, move=move, now=time.time()), now=time.monotonic()
    )


def _stream(run: Run, paths: Iterable[Path], handle: Callable[[Run, Path], None]) -> None:
    """`handle` each path, counting; stops early when asked to."""
    for path in paths:
        if run.stop.is_set():
            return
        run.counts.found += 1
        try:
            handle(run, path)
        except FileNotFoundError:
            run.counts.found -= 1  # gone while we looked: moved by someone else
        except OSError as exc:
            run.counts.errors += 1
            log.warning("reprocess.error", path=str(path), error=str(exc))
        run.progress.update(now=time.monotonic())


def _on_walk_error(counts: Counts) -> Callable[[str, OSError], None]:
    def report(folder: str, exc: OSError) -> None:
        counts.errors += 1
        log.warning("reprocess.unreadable_folder", path=folder, error=str(exc))

    return report


def _eligible(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(_IGNORED_SUFFIXES)


def _watch(run: Run, folders: tuple[str, ...]) -> None:
    # Files already in the folder count as changed now: one may still be being written.
    start = time.monotonic()
    report = _on_walk_error(run.counts)
    changed = {path: start for path in walk_files(folders, report) if _eligible(path)}
    for changes in watch(*folders, stop_event=run.stop, yield_on_timeout=True, rust_timeout=1000):
        now = time.monotonic()
        for _, raw in changes:
            if _eligible(path := Path(raw)):
                changed[path] = now
        settled = [p for p, at in changed.items() if now - at >= _SETTLE_S]
        for path in settled:
            del changed[path]
        before = run.counts.enqueued
        _stream(run, (p for p in settled if p.is_file()), _import_one_moved)
        run.admission.flush()
        if run.counts.enqueued > before:
            log.event("reprocess.watched", objects=run.counts.enqueued - before)


def _import_one_moved(run: Run, path: Path) -> None:
    _import_one(run, path, move=True)


def _check_paths(settings: ReprocessSettings) -> None:
    for path in (*settings.imports, *settings.watch):
        if not os.path.exists(path):
            raise StartupError(f"{path}: no such file or directory")
    for path in settings.watch:
        if not os.path.isdir(path):
            raise StartupError(f"--watch {path}: not a directory")
    if settings.resort and settings.filing.filepath is None:
        raise StartupError("--resort needs the new layout: give --filepath")
    if settings.resort and not os.path.isdir(settings.filing.directory):
        raise StartupError(f"--resort: archive {settings.filing.directory} is not a directory")


def _run(run: Run, settings: ReprocessSettings, connection: Redis) -> None:
    if settings.failed:
        refs = run.spool.unquarantine(run.lane, now=time.time())
        _count_unquarantined(connection, run.spool, refs)
        run.counts.found += len(refs)
        for ref in refs:
            run.admission.add(ref, now=time.monotonic())
    report = _on_walk_error(run.counts)
    move = settings.move

    def import_one(run: Run, path: Path) -> None:
        _import_one(run, path, move=move)

    _stream(run, walk_files(settings.imports, report), import_one)
    if settings.resort:
        _stream(run, walk_files([settings.filing.directory], report), resort_one(time.time()))
    run.admission.flush()


def _count_unquarantined(connection: Redis, spool: Spool, refs: list[str]) -> None:
    """Take what left failed/ out of its counts (the admission counts it into ready/)."""
    moved = [item for ref in refs if (item := spool.ready_object(ref))]
    with connection.pipeline() as pipe:
        count_unquarantined(pipe, str(spool), moved)
        pipe.execute()


def reprocess(settings: ReprocessSettings) -> int:
    _check_paths(settings)
    stop = StopSignal().install()
    spool = Spool(settings.spool_dir, settings.modes)
    spool.create()
    make_dirs(Path(settings.filing.directory), settings.modes)  # as receivers do
    rq_queue = ingest_queue(connect(settings.redis_url), settings.queue)
    job = DrainJob(str(spool), open_lane(spool, settings.filing))
    counts = Counts()
    try:
        # What an earlier, interrupted run left in the spool unqueued is found by recovery.
        register_spool(rq_queue.connection, SweepJob(str(spool)))
        enqueue_sweep(rq_queue, SweepJob(str(spool)))
        with ProgressReport(counts, now=time.monotonic()) as progress:
            admission = Admission(spool, rq_queue, job, counts)
            run = Run(spool, job.lane, settings.filing, admission, counts, progress, stop)
            _run(run, settings, rq_queue.connection)
            interrupted = stop.is_set()  # a hot folder's watch ends by being stopped
            if settings.watch and not interrupted:
                _watch(run, settings.watch)
        spool.settled([], now=None)  # everything admitted is queued: the writer marks go
    except RedisError as exc:
        print(f"reprocess: {counts.line()}", flush=True)
        print(
            f"pacs-ingest: Redis failed ({exc}); what is in the spool is queued by recovery",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    print(f"reprocess: {counts.line()}" + (" (interrupted)" if interrupted else ""), flush=True)
    log.event("reprocess.done", spool=str(spool), interrupted=interrupted, **asdict(counts))
    return ExitCode.INTERRUPTED if interrupted else ExitCode.OK
