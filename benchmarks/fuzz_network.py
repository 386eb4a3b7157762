"""The long network fuzzing run: seeded, mutated association and store streams against live
receivers, and every post-condition of issue 9.

    python -m benchmarks.fuzz_network [--cases 20000] [--seed 1] [--receivers 2]
                                      [--concurrency 48] [--floods 10] [--keep DIR]

Starts a Redis-compatible server of its own on a free port, `pacs-ingest receive` (short
--request-timeout and --idle-timeout, so every connection must end within seconds) and
`pacs-ingest work`, sends the cases of `tests.fuzz.network` (flipped bytes, lying and huge
lengths, wrong PDU types, PDVs on unknown contexts, spliced PDUs, truncations, stalls mid-PDU,
connections dropped mid-object, floods of half-open connections), then reports: receiver deaths,
hung connections, RSS through the run, descriptors against their baseline, what is left in
incoming/, acknowledged objects missing from the archive and failed/, and log lines that are not
one JSON object. Exits 1 if any post-condition fails.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from pacs_ingest.embedded_redis import RedisServer, free_port, server_binary
from tests.fuzz import live_campaign
from tests.helpers import Command, wait_for_port, wait_until

REQUEST_TIMEOUT_MS = 1000
IDLE_TIMEOUT_MS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000, help="connections (inputs)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--receivers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=48, help="connections at once")
    parser.add_argument("--floods", type=int, default=10, help="floods of 200 connections")
    parser.add_argument("--keep", type=Path, help="keep spool, archive and logs here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fuzz-network-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    redis = RedisServer(server_binary(), work / "redis", persistent=False)
    redis.start()
    port = free_port()
    spool, archive = work / "spool", work / "archive"
    commands = [
        Command(
            [
                "receive",
                *("-b", f"INGEST:{port}", "--directory", str(archive)),
                *("--spool-dir", str(spool), "--redis-url", redis.url),
                *("--receivers", str(args.receivers), "--sweep-interval", "1"),
                *("--request-timeout", str(REQUEST_TIMEOUT_MS)),
                *("--idle-timeout", str(IDLE_TIMEOUT_MS), "--soclose-delay", "50"),
            ],
            work / "receive.log",
        ).start(),
        Command(
            ["work", "--redis-url", redis.url, "--processes", "1", "--allow-directory", str(work)],
            work / "work.log",
        ).start(),
    ]
    try:
        wait_for_port(port)
        wait_until(
            lambda: commands[0].log().count('"receiver.started"') == args.receivers,
            60,
            "the receivers",
        )
        report = live_campaign.run(
            port=port,
            spool=spool,
            archive=archive,
            receive_log=commands[0].log_path,
            logs=[command.log_path for command in commands],
            cases=args.cases,
            seed=args.seed,
            concurrency=args.concurrency,
            close_within=10.0,
            floods=args.floods,
            settle_s=120.0,
        )
    finally:
        for command in reversed(commands):
            try:
                command.stop()
            except Exception:
                command.kill()
        redis.stop()
    print("\n".join(report.lines()))
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print(f"working folder: {work}" if args.keep else "")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
