"""--receiver-affinity: each receiver process, with every thread it has or starts later, on one
CPU of those the command may use, the receivers spread over them; `none` leaves them to the
kernel. Read from /proc of the real receiver processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import make_corpus
from pacs_ingest.receiver.affinity import receiver_cpu
from tests.conftest import Pipeline
from tests.fuzz import live_checks
from tests.helpers import wait_until
from tests.receivers import dcmtk

ALLOWED = sorted(os.sched_getaffinity(0))


def _thread_cpus(pid: int) -> dict[int, set[int]]:
    """The CPUs each thread of `pid` may run on."""
    return {int(tid): os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def _stored_once(pipeline: Pipeline, receive_log: str, tmp_path: Path) -> list[int]:
    """The receivers' pids, once a store has started every thread a receiver keeps."""
    wait_until(lambda: receive_log().count('"event":"receiver.started"') == 2, 30, "the receivers")
    (corpus,) = make_corpus(tmp_path / "corpus", 1, size=4096)
    stored = dcmtk("storescu", "-aec", "INGEST", "127.0.0.1", str(pipeline.port), str(corpus))
    assert stored.returncode == 0, stored.stderr
    return live_checks.receiver_pids(receive_log())


@pytest.mark.parametrize(
    ("index", "count", "allowed", "cpu"),
    [
        (0, 2, [0, 1], 0),
        (1, 2, [0, 1], 1),
        (1, 2, list(range(32)), 16),  # spread over the machine, not packed on its first CPUs
        (3, 4, [2, 5, 7, 9], 9),
        (2, 3, [4, 6], 4),  # more receivers than CPUs: round again
        (0, 1, [3], 3),
    ],
)
def test_receivers_are_spread_over_the_allowed_cpus(
    index: int, count: int, allowed: list[int], cpu: int
) -> None:
    assert receiver_cpu(index, count, set(allowed)) == cpu


@pytest.mark.skipif(len(ALLOWED) < 2, reason="one CPU: nothing to spread over")
def test_each_receiver_and_every_thread_it_starts_run_on_a_cpu_of_their_own(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    receive = pipeline.receive("--receivers", "2")
    pids = _stored_once(pipeline, receive.log, tmp_path)
    cpus = []
    for pid in pids:
        threads = _thread_cpus(pid)
        assert len(threads) >= 4  # the loop, fsync threads, the enqueuer: all started pinned
        assert len({frozenset(allowed) for allowed in threads.values()}) == 1, threads
        (allowed,) = set(map(frozenset, threads.values()))
        assert len(allowed) == 1
        cpus.append(next(iter(allowed)))
    assert sorted(cpus) == [receiver_cpu(i, 2, set(ALLOWED)) for i in range(2)]
    assert receive.log().count('"event":"receiver.pinned"') == 2


def test_receivers_stay_within_the_cpus_the_command_may_use(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    last = ALLOWED[-1]
    os.sched_setaffinity(0, {last})  # as `taskset -c <last>` would start the command
    try:
        receive = pipeline.receive("--receivers", "2")
    finally:
        os.sched_setaffinity(0, set(ALLOWED))
    for pid in _stored_once(pipeline, receive.log, tmp_path):
        assert set(map(frozenset, _thread_cpus(pid).values())) == {frozenset({last})}


def test_none_leaves_the_receivers_to_the_kernel(pipeline: Pipeline, tmp_path: Path) -> None:
    receive = pipeline.receive("--receivers", "2", "--receiver-affinity", "none")
    for pid in _stored_once(pipeline, receive.log, tmp_path):
        assert set(map(frozenset, _thread_cpus(pid).values())) == {frozenset(ALLOWED)}
    assert "receiver.pinned" not in receive.log()


def test_an_unknown_affinity_is_refused_at_start_up(tmp_path: Path) -> None:
    refused = subprocess.run(
        [
            *(sys.executable, "-m", "pacs_ingest", "receive", "-b", "INGEST:11112"),
            *("--spool-dir", str(tmp_path / "spool"), "--redis-url", "redis://127.0.0.1:1/0"),
            *("--receiver-affinity", "packed"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "invalid --receiver-affinity 'packed': choose from spread, none" in refused.stderr
