"""Chaos: 5,000 objects over 4 associations while workers, a receiver and Redis are killed.

Every acknowledged object must end up exactly once in the archive (byte-identical to what was
sent) or in failed/. The test prints one summary line.
"""

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import RedisServer, server_binary
from pacs_ingest.shared import part10
from tests.conftest import Pipeline
from tests.helpers import (
    Sender,
    alive,
    archive_files,
    started_processes,
    wait_until,
    waiting_objects,
)

OBJECTS = 5_000
SENDERS = 4


def _pids(log_text: str, prefix: str) -> list[int]:
    """Live pids of the `up` children whose name starts with `prefix`."""
    return [
        pid for name, pid in started_processes(log_text) if name.startswith(prefix) and alive(pid)
    ]


def _stored(pipeline: Pipeline) -> int:
    """Objects made durable so far: waiting in the spool or filed."""
    waiting = len(waiting_objects(pipeline.spool))
    return waiting + sum(1 for p in pipeline.archive.rglob("*.dcm"))


def _chaos(
    pipeline: Pipeline, redis: RedisServer, senders: list[Sender], rng: random.Random
) -> Counter:
    """Kill a random worker at every 1 % of the objects stored, one receiver at 30 %, restart
    Redis at 60 %.

    The schedule follows progress, not the clock: however fast the pipeline gets, every fault
    strikes while objects are in flight.
    """
    done = Counter()
    next_worker_kill = 0.01
    while any(s.is_alive() for s in senders):
        time.sleep(0.1)
        progress = _stored(pipeline) / OBJECTS
        log_text = pipeline.commands[0].log()
        workers = _pids(log_text, "worker-")
        if workers and progress >= next_worker_kill:
            os.kill(rng.choice(workers), signal.SIGKILL)
            done["workers killed"] += 1
            next_worker_kill = progress + 0.01
        if progress >= 0.3 and not done["receivers killed"]:
            receivers = _pids(log_text, "receiver-")
            os.kill(rng.choice(receivers), signal.SIGKILL)
            done["receivers killed"] += 1
        if progress >= 0.6 and not done["redis restarts"]:
            redis.stop()
            redis.start(port=redis.port)
            done["redis restarts"] += 1
    return done


def _dataset_bytes(path: Path) -> bytes:
    with open(path, "rb") as fp:
        part10.read_file_meta(fp)
        return fp.read()


@pytest.mark.timeout(300)
def test_chaos_loses_nothing_acknowledged(
    tmp_path: Path, port: int, capsys: pytest.CaptureFixture
) -> None:
    sources = make_corpus(tmp_path / "corpus", OBJECTS, size=4096, per_series=50)
    redis = RedisServer(server_binary(), tmp_path / "redis", persistent=False)
    pipeline = Pipeline(tmp_path, redis.start(), port)
    try:
        pipeline.up(
            "--receivers",
            "2",
            "--workers",
            "2",
            "--filepath",
            "{00100020}/{0020000D}/{00080018}.dcm",
        )
        deadline = time.monotonic() + 180
        senders = [Sender(sources[i::SENDERS], port, deadline) for i in range(SENDERS)]
        for sender in senders:
            sender.start()
        chaos = _chaos(pipeline, redis, senders, random.Random(11))
        acknowledged = set().union(*(s.acknowledged for s in senders))
        wait_until(
            lambda: (
                not waiting_objects(pipeline.spool)
                and len(archive_files(pipeline.archive)) >= len(acknowledged)
            ),
            120,
            "the spool to drain",
        )
        filed = Counter()
        by_uid = {}
        for path in archive_files(pipeline.archive):
            with open(path, "rb") as fp:
                uid = part10.read_file_meta(fp).media_storage_sop_instance_uid
            filed[uid] += 1
            by_uid[uid] = path
        source_uid = {p: p.name for p in sources}
        for path in sources:
            with open(path, "rb") as fp:
                source_uid[path] = part10.read_file_meta(fp).media_storage_sop_instance_uid
        failed = {p.stem for p in (pipeline.spool / "failed").glob("*.dcm")}
        lost = [p for p in acknowledged if source_uid[p] not in filed]
        different = [
            p
            for p in acknowledged
            if source_uid[p] in by_uid
            and _dataset_bytes(by_uid[source_uid[p]]) != _dataset_bytes(p)
        ]
        duplicates = sum(n - 1 for n in filed.values())
        left = len(waiting_objects(pipeline.spool))
        with capsys.disabled():
            print(
                f"\nchaos: sent={len(sources)} acknowledged={len(acknowledged)} "
                f"filed={sum(1 for p in acknowledged if source_uid[p] in filed)} "
                f"duplicates={duplicates} lost={len(lost)} left_in_spool={left} "
                f"failed={len(failed)} different={len(different)} "
                f"({', '.join(f'{k}={v}' for k, v in chaos.items())}, "
                f"sender runs={sum(s.attempts for s in senders)})"
            )
        assert chaos["workers killed"] >= 5 and chaos["receivers killed"] == 1
        assert chaos["redis restarts"] == 1
        assert len(acknowledged) == len(sources), "senders gave up before the deadline"
        assert lost == [] and duplicates == 0 and different == [] and left == 0
        assert not failed
        assert not [p for p in pipeline.archive.rglob("*.tmp")]
    finally:
        pipeline.stop_all()
        redis.stop()
