"""`pacs-ingest status`: is the pipeline of one spool keeping up? A table, or one JSON object.

It reads pacs_ingest.health's snapshot (counters and heartbeats in Redis, statvfs, the short
incoming/ listing), so it answers in milliseconds whatever the backlog, and its exit status says
what is wrong first, for health checks and monitoring scripts.
"""

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from pacs_ingest.health import Snapshot, take_snapshot
from pacs_ingest.shared.heartbeat import Beat
from pacs_ingest.shared.options import (
    ConfigError,
    Option,
    byte_size,
    dicom_int,
    non_negative,
)
from pacs_ingest.shared.queue import connect, redacted
from pacs_ingest.shared.spool import Spool

EXIT_HEALTHY = 0
EXIT_REDIS_UNREACHABLE = 3
EXIT_NO_RECEIVER = 4
EXIT_NO_WORKER = 5
EXIT_BACKLOG_TOO_OLD = 6
EXIT_LOW_SPACE = 7

EXIT_CODES_HELP = (
    "Exit status: 0 healthy; 2 bad options; 3 Redis unreachable; 4 no live receiver of this "
    "spool; 5 no live worker on the queue; 6 the oldest object waiting in ready/ is older than "
    "--max-unfiled-age; 7 the spool's or the archive's file system has less than --min-free "
    "free. With several problems, the first in this order decides; --json lists them all."
)
_ROLES = ("receivers", "workers", "none")


def _expected_role(text: str) -> str:
    if text not in _ROLES:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(_ROLES)}: {text!r}")
    return text


_GROUP = "status"
ROWS = (
    Option(
        ("--spool-dir",),
        "the spool whose pipeline to report on",
        _GROUP,
        type=str,
        env="PACS_INGEST_SPOOL_DIR",
        metavar="path",
        required=True,
    ),
    Option(("--json",), "print one JSON object instead of the table", _GROUP, kind="flag"),
    Option(
        ("--max-unfiled-age",),
        "unhealthy (exit 6) when the oldest object in ready/ waited longer than this; 0: never",
        _GROUP,
        type=non_negative(dicom_int),
        default=600,
        metavar="s",
    ),
    Option(
        ("--min-free",),
        "unhealthy (exit 7) when the spool's or the archive's file system has less free; 0: never",
        _GROUP,
        type=byte_size,
        default=1 << 30,
        metavar="size",
    ),
    Option(
        ("--expect",),
        "which processes must be alive: receivers, workers (a receiver-only or worker-only "
        "host names its own), or none",
        _GROUP,
        type=_expected_role,
        default=("receivers", "workers"),
        kind="multi",
        metavar="role",
    ),
)


@dataclass(frozen=True, slots=True)
class Problem:
    exit_code: int
    name: str
    message: str


def problems(snapshot: Snapshot, args: argparse.Namespace) -> list[Problem]:
    """What is wrong, most fundamental first."""
    found = []
    if snapshot.redis_error is not None:
        found.append(
            Problem(EXIT_REDIS_UNREACHABLE, "redis-unreachable", f"Redis: {snapshot.redis_error}")
        )
    else:
        if "receivers" in args.expect and not snapshot.receivers:
            found.append(
                Problem(EXIT_NO_RECEIVER, "no-receiver", f"no live receiver of {snapshot.spool}")
            )
        if "workers" in args.expect and not snapshot.workers:
            found.append(
                Problem(EXIT_NO_WORKER, "no-worker", f"no live worker on queue {snapshot.queue}")
            )
    age = snapshot.oldest_unfiled_age
    if args.max_unfiled_age and age is not None and age > args.max_unfiled_age:
        found.append(
            Problem(
                EXIT_BACKLOG_TOO_OLD,
                "backlog-too-old",
                f"the oldest unfiled object waited {age:.0f} s (over {args.max_unfiled_age} s)",
            )
        )
    for what, free in (
        ("spool", snapshot.spool_free_bytes),
        *((f"archive {path}", free) for path, free in snapshot.archives),
    ):
        if args.min_free and free is not None and free < args.min_free:
            found.append(
                Problem(
                    EXIT_LOW_SPACE,
                    "low-space",
                    f"the {what} has {_size(free)} free (under {_size(args.min_free)})",
                )
            )
    return found


def _size(count: int | None) -> str:
    if count is None:
        return "unknown"
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _process(beat: Beat) -> dict[str, Any]:
    return {"host": beat.host, "pid": beat.pid, "started_at": _iso(beat.started_at)}


def as_json(snapshot: Snapshot, found: list[Problem], redis_url: str) -> dict[str, Any]:
    counts = snapshot.counts
    return {
        "spool": snapshot.spool,
        "taken_at": _iso(snapshot.taken_at),
        "healthy": not found,
        "exit_code": found[0].exit_code if found else EXIT_HEALTHY,
        "problems": [
            {"name": p.name, "exit_code": p.exit_code, "message": p.message} for p in found
        ],
        "redis": {
            "url": redacted(redis_url),
            "reachable": snapshot.redis_error is None,
            "error": snapshot.redis_error,
        },
        "queue": {
            "name": snapshot.queue,
            "depth": snapshot.queue_depth,
            "jobs_in_progress": snapshot.jobs_in_progress,
        },
        "receivers": [_process(beat) for beat in snapshot.receivers],
        "workers": [_process(beat) for beat in snapshot.workers],
        "incoming": {"objects": snapshot.incoming_objects, "bytes": snapshot.incoming_bytes},
        "ready": {
            "objects": counts and counts.ready_objects,
            "bytes": counts and counts.ready_bytes,
            "oldest_unfiled_age_s": _round(snapshot.oldest_unfiled_age),
        },
        "failed": {
            "objects": counts and counts.failed_objects,
            "bytes": counts and counts.failed_bytes,
        },
        "filed_last_minute": counts and counts.filed_last_minute,
        "counted_at": _iso(counts and counts.counted_at),
        "spool_free_bytes": snapshot.spool_free_bytes,
        "archives": [{"path": path, "free_bytes": free} for path, free in snapshot.archives],
    }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _processes(beats: tuple[Beat, ...]) -> str:
    listed = ", ".join(f"{beat.host} pid {beat.pid}" for beat in beats)
    return f"{len(beats)} live" + (f": {listed}" if listed else "")


def as_table(snapshot: Snapshot, found: list[Problem], redis_url: str) -> str:
    counts = snapshot.counts
    unknown = "unknown (Redis unreachable)"
    if found:
        health = f"UNHEALTHY (exit {found[0].exit_code}): " + "; ".join(p.message for p in found)
    else:
        health = "healthy"
    rows = [
        ("health", health),
        (
            "redis",
            f"{'reachable' if snapshot.redis_error is None else 'UNREACHABLE'} "
            f"({redacted(redis_url)})",
        ),
    ]
    if counts is None:
        rows += [("queue", unknown), ("ready/", unknown), ("failed/", unknown)]
    else:
        age = snapshot.oldest_unfiled_age
        oldest = "nothing waits" if age is None else f"oldest waiting {age:.1f} s"
        recounted = (
            "never since Redis started: figures may be incomplete until the first sweep"
            if counts.counted_at is None
            else f"{max(0.0, snapshot.taken_at - counts.counted_at):.0f} s ago (recovery sweep)"
        )
        rows += [
            (
                "queue",
                f"{snapshot.queue_depth} objects queued in the lanes, "
                f"{snapshot.jobs_in_progress} jobs in progress (queue {snapshot.queue})",
            ),
            ("receivers", _processes(snapshot.receivers)),
            ("workers", _processes(snapshot.workers)),
            ("ready/", f"{counts.ready_objects} objects, {_size(counts.ready_bytes)}, {oldest}"),
            ("failed/", f"{counts.failed_objects} objects, {_size(counts.failed_bytes)}"),
            ("filed", f"{counts.filed_last_minute} objects in the last minute"),
            ("recounted", recounted),
        ]
    rows += [
        ("incoming/", f"{snapshot.incoming_objects} objects, {_size(snapshot.incoming_bytes)}"),
        ("spool free", _size(snapshot.spool_free_bytes)),
    ]
    rows += [("archive free", f"{_size(free)} ({path})") for path, free in snapshot.archives]
    if not snapshot.archives:
        rows.append(("archive free", "unknown (no lane in ready/ yet)"))
    header = f"pacs-ingest status of {snapshot.spool} at {_iso(snapshot.taken_at)}"
    return "\n".join([header, *(f"  {name:<13} {value}" for name, value in rows)]) + "\n"


def status(args: argparse.Namespace) -> int:
    """Print the spool's state; the exit status of its first problem (EXIT_HEALTHY if none)."""
    if not Path(args.spool_dir).is_dir():
        raise ConfigError(f"no spool at {args.spool_dir} (not a directory)")
    snapshot = take_snapshot(
        Spool(args.spool_dir), connect(args.redis_url), args.queue, now=time.time()
    )
    found = problems(snapshot, args)
    if args.json:
        sys.stdout.write(orjson.dumps(as_json(snapshot, found, args.redis_url)).decode() + "\n")
    else:
        sys.stdout.write(as_table(snapshot, found, args.redis_url))
    return found[0].exit_code if found else EXIT_HEALTHY
