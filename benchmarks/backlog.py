"""A migration-scale backlog: Redis memory per waiting object, recovery passes, drain rates.

    python -m benchmarks.backlog [--count 1000000] [--dir DIR] [--per-bucket 10000]
                                 [--workers 1,2,4] [--drain-seconds 20] [--filepath PATTERN]

Builds `--count` synthetic small objects (~330 bytes, unique UIDs) in the ready/ lane of a spool
under `--dir` (tmpfs keeps it fast: /dev/shm/...), spread over closed time buckets of
`--per-bucket` objects, as receivers would have left them hours ago. Against a Redis server of
its own it then measures:

1. one recovery pass with nothing queued (Redis as after a flush): it queues every object;
2. Redis memory per waiting object (INFO used_memory, minus the empty server's);
3. one pass with every object queued (the cost that must not grow with the backlog);
4. FLUSHALL, one pass again: every object queued again, none twice (the list is checked);
5. the drain rate of 1, 2 and 4 `pacs-ingest work` processes, `--drain-seconds` each, on the
   same backlog (what each run files is gone for the next), filed by `--filepath` (default:
   none, named by SOP Instance UID; the objects have only their SOP Class and Instance UIDs).

One JSON line per figure on stdout. The spool is removed afterwards unless --keep.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from redis import Redis

from pacs_ingest.embedded_redis import RedisServer, server_binary
from pacs_ingest.shared import part10
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import BUCKET_S, READY_SUFFIX, Spool
from pacs_ingest.workers.recovery import sweep

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
_ROOT = Path(__file__).resolve().parent.parent


def _ui(element: int, uid: str) -> bytes:
    value = uid.encode("ascii")
    if len(value) % 2:
        value += b"\x00"
    return (
        (0x0008).to_bytes(2, "little")
        + element.to_bytes(2, "little")
        + b"UI"
        + (len(value).to_bytes(2, "little") + value)
    )


def synthetic_object(sop_instance_uid: str) -> bytes:
    """A minimal Part 10 object: file meta, SOP Class and SOP Instance UID, nothing else."""
    header = part10.encode_header(
        sop_class_uid=SECONDARY_CAPTURE,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=EXPLICIT_VR_LE,
        implementation_class_uid="1.2.3.4",
        implementation_version_name="BACKLOG",
        source_ae_title="BACKLOG",
    )
    return header + _ui(0x0016, SECONDARY_CAPTURE) + _ui(0x0018, sop_instance_uid)


def build_backlog(spool: Spool, lane: str, count: int, *, per_bucket: int, now: float) -> int:
    """Write `count` objects into closed buckets of `lane` ending an hour before `now`; how many
    buckets."""
    buckets = -(-count // per_bucket)
    first = int(now // BUCKET_S) - 360 - buckets
    written = 0
    for index in range(buckets):
        folder = spool.ready / lane / str(first + index)
        folder.mkdir()
        for _ in range(min(per_bucket, count - written)):
            name = uuid.uuid4()
            with open(folder / f"{name.hex}{READY_SUFFIX}", "xb") as f:
                f.write(synthetic_object(f"2.25.{name.int}"))
            written += 1
    return buckets


def queued_refs(connection: Redis, lane: str, chunk: int = 100_000) -> Iterator[bytes]:
    length = connection.llen(names_key(lane))
    for start in range(0, length, chunk):
        yield from connection.lrange(names_key(lane), start, start + chunk - 1)


def _used_memory(connection: Redis) -> int:
    return int(connection.info("memory")["used_memory"])


def _timed_pass(spool: Spool, connection: Redis) -> tuple[float, int]:
    started = time.perf_counter()
    result = sweep(spool, ingest_queue(connection), now=time.time(), holder="benchmark")
    assert result is not None
    return time.perf_counter() - started, result.requeued


def _report(**figure: object) -> None:
    print(json.dumps(figure), flush=True)


def drain_rate(
    redis_url: str, connection: Redis, lane: str, workers: int, seconds: float, allowed: Path
) -> float:
    """Objects per second that `workers` worker processes, allowed to file in `allowed` (the
    folder holding spool and archive), take off the lane in `seconds`."""
    before = connection.llen(names_key(lane))
    process = subprocess.Popen(
        [sys.executable, "-m", "pacs_ingest", "work", "--redis-url", redis_url,
         "--processes", str(workers), "--log-level", "warning", "--allow-directory", str(allowed)],
        cwd=_ROOT,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    # Count from the first object taken, not from the processes' start-up.
    while connection.llen(names_key(lane)) == before > 0 and process.poll() is None:
        time.sleep(0.01)
    start_length, started = connection.llen(names_key(lane)), time.perf_counter()
    end_length = start_length
    while time.perf_counter() - started < seconds and end_length:
        time.sleep(0.05)
        end_length = connection.llen(names_key(lane))
    elapsed = time.perf_counter() - started
    if not end_length:
        print(f"the backlog ran out after {elapsed:.1f} s: use a larger --count", file=sys.stderr)
    process.terminate()
    process.wait(30)
    return (start_length - end_length) / elapsed


def run(args: argparse.Namespace) -> None:
    base = Path(tempfile.mkdtemp(prefix="pacs-backlog-", dir=args.dir))
    server = RedisServer(server_binary(), base / "redis", persistent=False)
    server.start()
    try:
        connection = Redis.from_url(server.url)
        spool = Spool(base / "spool")
        spool.create()
        (base / "archive").mkdir()
        lane = open_lane(spool, Filing(str(base / "archive"), args.filepath, 0, 0))
        started = time.perf_counter()
        buckets = build_backlog(
            spool, lane, args.count, per_bucket=args.per_bucket, now=time.time()
        )
        _report(built=args.count, buckets=buckets, seconds=round(time.perf_counter() - started, 1))
        empty = _used_memory(connection)
        seconds, queued = _timed_pass(spool, connection)
        _report(recovery_pass="nothing queued", seconds=round(seconds, 3), queued=queued)
        per_object = (_used_memory(connection) - empty) / args.count
        _report(redis_bytes_per_waiting_object=round(per_object, 1), waiting=args.count)
        seconds, queued = _timed_pass(spool, connection)
        _report(recovery_pass="all queued", seconds=round(seconds, 4), queued=queued)
        connection.flushall()
        seconds, queued = _timed_pass(spool, connection)
        refs = list(queued_refs(connection, lane))
        _report(
            recovery_pass="after FLUSHALL",
            seconds=round(seconds, 3),
            queued=queued,
            listed=len(refs),
            distinct=len(set(refs)),
        )
        for workers in args.workers:
            rate = drain_rate(server.url, connection, lane, workers, args.drain_seconds, base)
            _report(drain_workers=workers, objects_per_s=round(rate, 1))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dir", default=None, help="where the spool goes (default: TMPDIR)")
    parser.add_argument("--per-bucket", type=int, default=10_000)
    parser.add_argument(
        "--workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2, 4]
    )
    parser.add_argument("--drain-seconds", type=float, default=20.0)
    parser.add_argument("--filepath", default=None, help="the pattern the drains file by")
    parser.add_argument("--keep", action="store_true", help="keep the spool and archive")
    args = parser.parse_args()
    if args.dir:
        os.makedirs(args.dir, exist_ok=True)
    run(args)


if __name__ == "__main__":
    main()
