"""CPU per object of a receiver and of a worker, each alone in one process, two source trees
alternated.

    python -m benchmarks.cpu_per_object [--role receiver|worker] [--count 2000] [--rounds 5]
                                        [--against DIR] [--work-dir DIR] [--keep] [--profile]

The pipeline's rate (benchmarks.ingest) is bound by the CPU of every process on the machine, and
on a shared machine it drifts by tens of percent within minutes, so a change of a few percent in
one role's CPU cannot be seen in it. This leaves out the network, the senders and the other role:

- `receiver`: one `Association` (the upper layer, the service, part files, the group commit and
  its fsync threads) on a real event loop is fed `--count` C-STOREs of 8 KB data sets, each once
  the one before is answered, as a synchronous sender sends them; the spool is on /dev/shm when
  there is one (tests.fuzz.association_harness). The process runs on one CPU, as receivers do
  by default (--receiver-affinity spread).
- `worker`: `--count` objects of the 8 KB corpus are spooled into ready/ as receivers leave them,
  then filed in batches of 55 (about what a drain claims under load) by `workers.drain`'s batch
  filing, against a Redis server of its own; spool and archive are under --work-dir, on disk.

The figure is the process's CPU time (user and system) for that work alone, divided by the
count. Each round runs each tree in a child process of its own (PYTHONPATH=<tree>), in an order
that alternates from round to round, and what a round stored is kept until all rounds are done:
on ext4 without a journal, creating files right after many were deleted is slow. Printed: each
tree's median and range, and with --against the ratio of the medians, "this" (this checkout)
over "against" (the other tree, e.g. a `git worktree` of main). --profile prints a cProfile of
one run of this checkout instead.
"""

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from redis import Redis

# A child imports these from the tree it measures (PYTHONPATH), the parent from this checkout.
from benchmarks.corpus import cached_corpus, default_cache_dir
from pacs_ingest.embedded_redis import RedisServer, server_binary
from pacs_ingest.receiver.association import Association, Registry
from pacs_ingest.shared import log
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.modes import DEFAULT_MODES
from pacs_ingest.shared.spool import Spool, new_name
from pacs_ingest.workers import drain, policy
from pacs_ingest.workers.claims import Claims
from tests.fuzz import streams
from tests.fuzz.association_harness import AssociationHarness, RecordingTransport

ROOT = Path(__file__).resolve().parent.parent
BATCH = 55
PATTERN = "{00100020}/{0020000D}/{0020000E}/{00080018}.dcm"
SIZE = 8192


def _receiver(count: int) -> None:
    # On one CPU with every thread it starts, as receivers run by default (receiver.affinity).
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    harness = AssociationHarness()
    uids = [b"1.2.826.0.1.3680043.8.498.%d" % index for index in range(1, count + 1)]
    pdus, stores = streams.session(uids, size=SIZE, fragment=16372, echo=False)
    messages = [b"".join(pdus[store.first_pdu : store.last_pdu + 1]) for store in stores]

    async def send_all() -> None:
        loop = asyncio.get_running_loop()
        association = Association(harness.rules[True], Registry(harness.storage))
        transport = RecordingTransport()
        answered: list[asyncio.Future[None]] = []
        record = transport.write

        def write(data: bytes) -> None:  # each write after the A-ASSOCIATE-AC is an answer
            record(data)
            if answered and not answered[-1].done():
                answered[-1].set_result(None)

        transport.write = write  # type: ignore[method-assign]
        association.connection_made(transport)  # type: ignore[arg-type]
        association.data_received(pdus[0])
        for message in messages:
            answered.append(loop.create_future())
            association.data_received(message)
            await answered[-1]
        association.data_received(streams.A_RELEASE_RQ)

    _measured(count, lambda: harness.loop.run_until_complete(send_all()))
    harness.close()


def _worker(count: int, work: Path, corpus: Path) -> None:
    server = RedisServer(server_binary(), work / "redis", persistent=False)
    connection = Redis.from_url(server.start())
    spool = Spool(str(work / "spool"))
    spool.create()
    (work / "archive").mkdir()
    filing = Filing(str(work / "archive"), PATTERN, 0, 0)
    lane = open_lane(spool, filing)
    refs = []
    for path in sorted(corpus.glob("*.dcm"))[:count]:
        name = new_name()
        shutil.copyfile(path, spool.part_path(name))
        refs.append(spool.make_ready(name, lane, now=time.time()))
    spool.sync_ready(refs)
    refs = [ref.partition("/")[2] for ref in refs]
    policy.install(policy.WorkerPolicy.of((str(work),), DEFAULT_MODES, 3))
    with open(work / "worker.log", "w") as log_file:
        sys.stderr = log_file  # the line per filed object goes here, as a worker's would
        log.configure("INFO", role="worker")
        claims = Claims(connection, lane, "benchmark")

        def file_all() -> None:  # a drain's loop without rq's job around it
            for start in range(0, len(refs), BATCH):
                connection.rpush(names_key(lane), *refs[start : start + BATCH])
                claimed = claims.take(BATCH)
                assert claimed, "the batch just pushed could not be claimed"
                batch = drain._Batch(spool, claims)
                assert drain._file_batch(batch, lane, filing, claimed)
                assert drain._settle(batch)

        _measured(count, file_all)
        sys.stderr = sys.__stderr__
    server.stop()
    filed = sum(1 for path in (work / "archive").rglob("*.dcm"))
    if filed != count:
        raise SystemExit(f"filed {filed} of {count} objects (see {work / 'worker.log'})")


def _measured(count: int, work: Callable[[], object]) -> None:
    """Run `work`, under cProfile if PROFILE is set; print its CPU ms per object as JSON."""
    started = time.process_time()
    if os.environ.get("PROFILE"):
        profile = cProfile.Profile()
        profile.runcall(work)
        pstats.Stats(profile, stream=sys.stdout).sort_stats("tottime").print_stats(30)
    else:
        work()
    print(json.dumps({"cpu_ms": 1000 * (time.process_time() - started) / count}), flush=True)


def _child(args: argparse.Namespace) -> None:
    if args.role == "receiver":
        _receiver(args.count)
    else:
        _worker(args.count, args.child, args.corpus)


def _run(tree: Path, args: argparse.Namespace, work: Path, corpus: Path, *, profile: bool) -> str:
    """One child run of `tree`; its stdout."""
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    if profile:
        env["PROFILE"] = "1"
    done = subprocess.run(
        [
            # -P: the tree's modules, not this file's neighbours, are what the child imports.
            *(sys.executable, "-P", str(Path(__file__).resolve()), "--role", args.role),
            *("--count", str(args.count), "--child", str(work), "--corpus", str(corpus)),
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: exited {done.returncode}\n{done.stderr[-3000:]}")
    return done.stdout


def _figure(stdout: str) -> float:
    return json.loads(stdout.strip().splitlines()[-1])["cpu_ms"]


def main(argv: list[str] | None = None) -> None:
    title, _usage, body = __doc__.split("\n\n", 2)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpu_per_object",
        description=f"{title}\n\n{body}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--role", choices=("receiver", "worker"), default="receiver")
    parser.add_argument(
        "--count", type=int, default=2000, metavar="N", help="objects per run (default: 2000)"
    )
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="rounds (default: 5)")
    parser.add_argument(
        "--against", type=Path, metavar="DIR", help="a second source tree, run alternately"
    )
    parser.add_argument(
        "--work-dir", type=Path, metavar="DIR", help="where runs store (default: a new folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep what the runs stored")
    parser.add_argument("--profile", action="store_true", help="one run of this checkout, profiled")
    parser.add_argument(
        "--cache-dir", type=Path, default=default_cache_dir(), help=argparse.SUPPRESS
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.count < 1 or args.rounds < 1:
        parser.error("--count and --rounds must be at least 1")
    if args.child is not None:
        _child(args)
        return
    trees = {"this": ROOT} | ({"against": args.against.resolve()} if args.against else {})
    for tree in trees.values():
        if not (tree / "pacs_ingest").is_dir():
            parser.error(f"{tree} is not a pacs-ingest source tree (no pacs_ingest/ in it)")
    corpus = cached_corpus(args.cache_dir, args.count, size=SIZE)[0].parent
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pacs-ingest-cpu-"))
    try:
        if args.profile:
            print(_run(ROOT, args, work / "profile", corpus, profile=True), end="")
        else:
            _report(args, trees, _rounds(args, trees, work, corpus))
    finally:
        if not args.keep and args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _rounds(
    args: argparse.Namespace, trees: dict[str, Path], work: Path, corpus: Path
) -> dict[str, list[float]]:
    """Each tree's figure of each round, the order alternating from round to round."""
    figures: dict[str, list[float]] = {label: [] for label in trees}
    labels = list(trees)
    for round_ in range(args.rounds):
        for label in labels if round_ % 2 == 0 else labels[::-1]:
            stdout = _run(trees[label], args, work / f"{round_}-{label}", corpus, profile=False)
            figures[label].append(_figure(stdout))
            print(f"round {round_ + 1}/{args.rounds}  {label}  {figures[label][-1]:.3f} ms/object")
    return figures


def _report(
    args: argparse.Namespace, trees: dict[str, Path], figures: dict[str, list[float]]
) -> None:
    medians = {label: statistics.median(values) for label, values in figures.items()}
    for label, values in figures.items():
        print(
            f"{args.role} {label} ({trees[label]}): {medians[label]:.3f} ms CPU per object "
            f"(median of {len(values)}; {min(values):.3f} to {max(values):.3f})"
        )
    if "against" in medians:
        print(f"this / against: {medians['this'] / medians['against']:.3f}")


if __name__ == "__main__":
    main()
