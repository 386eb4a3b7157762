"""`pacs-ingest up | receive | work | render`: parse options, start the parts, map failures to
exit codes.

Exit codes: 0 after a requested stop, 1 when the pipeline failed at run time, 2 for bad options or
an unusable configuration (bad pattern, port in use), with a message and a hint on stderr.
"""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pacs_ingest import render
from receiver.main import BindError, receive, start_receivers
from receiver.options import ROWS as RECEIVER_ROWS
from receiver.options import ReceiverSettings
from shared import __version__, log
from shared.embedded_redis import EmbeddedRedisError, RedisServer, valkey_binary
from shared.options import COMMON_ROWS, REDIS_URL_ROW, Option, add_options, dicom_int, positive
from shared.processes import EXIT_CONFIG, StopSignal, stop_all, supervise
from workers.main import ROWS as WORKER_ROWS
from workers.main import WorkerSettings, start_workers, work

EXIT_FAILURE = 1
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pacs-ingest",
        allow_abbrev=False,
        description="DICOM Storage SCP for high-volume ingest: receivers spool each object "
        "durably, workers file it under a path built from its attributes.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"pacs-ingest: {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    up = commands.add_parser(
        "up",
        allow_abbrev=False,
        help="run receivers, workers and (without --redis-url) an "
        "embedded Redis-compatible server, in the foreground",
        description="Everything on one host. Without --redis-url or REDIS_URL an embedded "
        "server keeps the queue in <spool-dir>/redis.",
    )
    add_options(up, (*RECEIVER_ROWS, UP_WORKERS, REDIS_URL_ROW, *COMMON_ROWS))

    receive_cmd = commands.add_parser(
        "receive",
        allow_abbrev=False,
        help="run receiver processes only",
        description="Accept associations, spool objects, enqueue jobs on --redis-url.",
    )
    add_options(receive_cmd, (*RECEIVER_ROWS, _required(REDIS_URL_ROW), *COMMON_ROWS))

    work_cmd = commands.add_parser(
        "work",
        allow_abbrev=False,
        help="run worker processes only",
        description="File spooled objects; any number of hosts may run workers on one queue.",
    )
    add_options(work_cmd, (*WORKER_ROWS, _required(REDIS_URL_ROW), *COMMON_ROWS))
    render.add_command(commands)
    return parser


def _required(option: Option) -> Option:
    return Option(
        option.flags,
        option.help,
        option.group,
        type=option.type,
        env=option.env,
        metavar=option.metavar,
        required=True,
    )


def _up(args: argparse.Namespace) -> int:
    embedded = None
    if args.redis_url is None:
        embedded = RedisServer(valkey_binary(), Path(args.spool_dir, "redis"), persistent=True)
        args.redis_url = embedded.start()
        log.event("redis.embedded", url=args.redis_url, data=str(embedded.data_dir))
    stop = StopSignal().install()
    groups = []
    try:
        receivers, sweeps = start_receivers(ReceiverSettings.from_args(args))
        groups.append(receivers)
        try:
            groups.append(start_workers(WorkerSettings.from_args(args, args.workers)))
            log.event("up", port=args.bind.port, redis=args.redis_url)
            return supervise(groups, stop)
        finally:
            sweeps.stop()
    finally:
        stop_all(groups, _STOP_TIMEOUT_S)
        if embedded is not None:
            embedded.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "render":
        return render.run(args.pattern, args.files)
    log.configure(args.log_level, role=args.command)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "receive":
            return receive(ReceiverSettings.from_args(args))
        return work(WorkerSettings.from_args(args, args.processes))
    except (BindError, EmbeddedRedisError) as exc:
        print(f"pacs-ingest: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
