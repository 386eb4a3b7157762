"""`pacs-ingest up | receive | work | reprocess | status | render`: parse options, start the
parts, map failures to exit codes.

Exit codes: 0 after a requested stop (and for -h, -V), 1 when the pipeline failed at run time
(the embedded server keeps dying), 2 for bad options or an unusable configuration (bad pattern,
port in use, unreadable key store, a spool another `up` runs), with a one-line
`pacs-ingest: <message>` on stderr (and a hint, for 2).
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from redis import Redis

from pacs_ingest import render, status
from pacs_ingest.embedded_redis import EmbeddedRedisError
from pacs_ingest.metrics_endpoint import METRICS_PORT_ROW, serving_metrics
from pacs_ingest.receiver.main import receive, start_receivers
from pacs_ingest.receiver.options import FILING_ROWS, ReceiverSettings, filing_from_args
from pacs_ingest.receiver.options import ROWS as RECEIVER_ROWS
from pacs_ingest.redis_home import RedisHome, find_redis_url
from pacs_ingest.server_watch import ServerFailed, ServerWatch
from pacs_ingest.shared import __version__, log
from pacs_ingest.shared.jobs import registered_spools
from pacs_ingest.shared.modes import modes_from_args
from pacs_ingest.shared.options import (
    COMMON_ROWS,
    REDIS_URL_ROW,
    Option,
    StartupError,
    dicom_int,
    format_help,
    hint,
    parse_args,
    positive,
)
from pacs_ingest.shared.processes import EXIT_CONFIG, StopSignal, Supervised, stop_all, supervise
from pacs_ingest.shared.queue import redacted
from pacs_ingest.workers.main import FILING_POLICY_ROWS, WorkerSettings, start_workers, work
from pacs_ingest.workers.main import ROWS as WORKER_ROWS
from pacs_ingest.workers.reprocess import ROWS as REPROCESS_ROWS
from pacs_ingest.workers.reprocess import ReprocessSettings, reprocess

PROG = "pacs-ingest"
EXIT_FAILED = 1
_STOP_TIMEOUT_S = 13.5

UP_WORKERS = Option(
    ("--workers",),
    "worker processes",
    "processes",
    type=positive(dicom_int),
    default=1,
    metavar="n",
    env="PACS_INGEST_WORKERS",
)
_BIND = "-b [aet[@ip]:]port"


@dataclass(frozen=True)
class Command:
    usage: str
    description: str
    rows: tuple[Option, ...]
    run: Callable[[argparse.Namespace], int]


def _embedded_server(spool_dir: str) -> ServerWatch:
    """Claim <spool-dir>/redis and start its server on a Unix socket, with its password."""
    home = RedisHome(spool_dir)
    lock = home.claim()  # kept open (and inherited by the server) until we exit
    server = home.server(lock)
    watch = ServerWatch(server, home)
    watch.start()
    return watch


def _up(args: argparse.Namespace) -> int:
    stop = StopSignal().install()
    watch = None
    if args.redis_url is None:
        watch = _embedded_server(args.spool_dir)
        args.redis_url = watch.url
    spool = os.path.abspath(args.spool_dir)
    try:
        with serving_metrics(args.metrics_port, args.redis_url, args.queue, lambda _: [spool]):
            return _run_up(args, stop, watch)
    finally:
        if watch is not None:
            watch.stop()


def _run_up(args: argparse.Namespace, stop: StopSignal, watch: ServerWatch | None) -> int:
    groups = []
    try:
        receivers, sweeps = start_receivers(ReceiverSettings.from_args(args))
        groups.append(receivers)
        try:
            allowed = (args.directory, args.spool_dir)
            groups.append(start_workers(WorkerSettings.from_args(args, args.workers, allowed)))
            log.event("up", port=args.bind.port, redis=redacted(args.redis_url))
            parts: list[Supervised] = [*groups, *([watch] if watch else [])]
            return supervise(parts, stop)
        except ServerFailed as exc:
            print(f"{PROG}: {exc}; stopping", file=sys.stderr)
            return EXIT_FAILED
        finally:
            sweeps.stop()
    finally:
        stop_all(groups, _STOP_TIMEOUT_S)


def _receive(args: argparse.Namespace) -> int:
    settings = ReceiverSettings.from_args(args)
    spools = [settings.spool_dir]
    with serving_metrics(args.metrics_port, settings.redis_url, settings.queue, lambda _: spools):
        return receive(settings)


def _work(args: argparse.Namespace) -> int:
    args.redis_url = find_redis_url(args.redis_url, args.spool_dir)
    settings = WorkerSettings.from_args(args, args.processes)

    def spools(connection: Redis) -> list[str]:
        return [job.spool for job in registered_spools(connection)]

    with serving_metrics(args.metrics_port, settings.redis_url, settings.queue, spools):
        return work(settings)


def _status(args: argparse.Namespace) -> int:
    args.redis_url = find_redis_url(args.redis_url, args.spool_dir)
    return status.status(args)


def _reprocess(args: argparse.Namespace) -> int:
    return reprocess(
        ReprocessSettings(
            spool_dir=args.spool_dir,
            modes=modes_from_args(args),
            filing=filing_from_args(args),
            failed=args.failed,
            imports=tuple(getattr(args, "import")),
            resort=args.resort,
            watch=tuple(args.watch),
            move=args.move,
            redis_url=find_redis_url(args.redis_url, args.spool_dir),
            queue=args.queue,
        )
    )


_UP_REDIS_URL_ROW = replace(
    REDIS_URL_ROW, help=f"{REDIS_URL_ROW.help}; default: an embedded server of our own"
)
# work and reprocess find up's embedded server from --spool-dir when given no URL.
_FOUND_REDIS_URL_ROW = replace(
    REDIS_URL_ROW,
    help=f"{REDIS_URL_ROW.help}; default: the embedded server of the `up` on --spool-dir",
)


COMMANDS = {
    "up": Command(
        f"{PROG} up [options] {_BIND} --spool-dir path",
        "Everything on one host: receivers, workers and (without --redis-url or REDIS_URL) an "
        "embedded Redis-compatible server keeping the queue in <spool-dir>/redis, on a Unix "
        "socket with a password; its URL is in <spool-dir>/redis/url, for `work`, `reprocess` "
        "and rq's tools. Options are those of dcm4che's storescp, plus the queue and process "
        "options.",
        (
            *(*RECEIVER_ROWS, UP_WORKERS, *FILING_POLICY_ROWS, _UP_REDIS_URL_ROW),
            *(METRICS_PORT_ROW, *COMMON_ROWS),
        ),
        _up,
    ),
    "receive": Command(
        f"{PROG} receive [options] {_BIND} --spool-dir path --redis-url url",
        "Receiver processes only: accept associations, spool objects, enqueue jobs on "
        "--redis-url. Options are those of dcm4che's storescp, plus the queue and process options.",
        (*RECEIVER_ROWS, replace(REDIS_URL_ROW, required=True), METRICS_PORT_ROW, *COMMON_ROWS),
        _receive,
    ),
    "work": Command(
        f"{PROG} work [options] (--redis-url url | --spool-dir path) --allow-directory dir...",
        "Worker processes only: file spooled objects; any number of hosts may run workers on "
        "one queue. They run only pacs-ingest's jobs, and only on spools and archive roots below "
        "--allow-directory.",
        (*WORKER_ROWS, _FOUND_REDIS_URL_ROW, METRICS_PORT_ROW, *COMMON_ROWS),
        _work,
    ),
    "reprocess": Command(
        f"{PROG} reprocess [--failed] [--import path...] [--resort] [--watch dir...] "
        "--spool-dir path [--redis-url url]",
        "File objects again: those in the spool's failed/, DICOM files from any folder tree, "
        "the archive itself into a new --filepath (--resort), or a hot folder. They are filed "
        "with the storage options given here. Trees are queued while they are walked, with "
        "progress on stderr and a summary on stdout; stopped, it exits 130 and can be run "
        "again.",
        (*REPROCESS_ROWS, *FILING_ROWS, _FOUND_REDIS_URL_ROW, *COMMON_ROWS),
        _reprocess,
    ),
    "status": Command(
        f"{PROG} status --spool-dir path [--redis-url url] [--json]",
        "Report on one spool's pipeline: queue depth and jobs in progress, live receiver and "
        "worker processes (host and pid), objects and bytes in incoming/, ready/ and failed/, "
        "the age of the oldest object not yet filed, objects filed in the last minute, free "
        "space of the spool and archive file systems, and whether Redis answers. It reads "
        "counters and heartbeats kept in Redis (never the queue or the backlog), so it answers "
        "at once; usable as a health check. " + status.EXIT_CODES_HELP,
        (*status.ROWS, _FOUND_REDIS_URL_ROW, *COMMON_ROWS),
        _status,
    ),
}

TOP_HELP = f"""usage: {PROG} <command> [options]

DICOM Storage SCP for high-volume ingest: receivers spool each object durably, workers file it
under a path built from its attributes.

commands:
  up        run receivers, workers and (without --redis-url) an embedded Redis, in the foreground
  receive   run receiver processes only
  work      run worker processes only
  reprocess file again what is in failed/, in a folder tree, the archive (re-sort), or a
            hot folder
  status    report queue, processes, backlog and free space of a spool; exit status for health
  render    print the archive path a --filepath pattern gives each file

`{PROG} <command> -h` lists a command's options.
"""


VERSION = f"{PROG}: {__version__}\n"
TOP_LEVEL = {"-h": TOP_HELP, "--help": TOP_HELP, "-V": VERSION, "--version": VERSION}


def _fail(message: str, prog: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    print(hint(prog), file=sys.stderr)
    return EXIT_CONFIG


def _run(name: str, command: Command, argv: Sequence[str]) -> int:
    args = parse_args(command.rows, argv)
    if args.help:
        print(format_help(command.usage, command.description, command.rows), end="")
        return 0
    if args.version:
        print(f"{PROG}: {__version__}")
        return 0
    log.configure(args.log_level, role=name)
    return command.run(args)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = argv[0] if argv else ""
    if name in TOP_LEVEL:
        print(TOP_LEVEL[name], end="")
        return 0
    if name == "render":
        return render.main(argv[1:])
    command = COMMANDS.get(name)
    if command is None:
        return _fail(f"unknown command {name!r}" if name else "missing command", PROG)
    try:
        return _run(name, command, argv[1:])
    except (StartupError, EmbeddedRedisError) as exc:
        return _fail(str(exc), f"{PROG} {name}")

    except KeyboardInterrupt:
        return 0
