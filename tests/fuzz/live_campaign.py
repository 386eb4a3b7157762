"""One network fuzzing run against live receivers, and the report of what it left behind: used by
the CI slice (`tests/test_network_fuzz.py`) and the long run (`benchmarks/fuzz_network.py`).

The receivers (`pacs-ingest receive`, with workers filing behind them) are started by the
caller; this warms them up with clean sessions, takes each receiver's descriptor count as its
baseline, runs the cases while sampling RSS, waits for the spool to settle and checks.
"""

import asyncio
import collections
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.fuzz import live_checks, network, streams
from tests.helpers import log_entries

# Rounds of 8 clean sessions at most before the baseline: each round misses a given receiver
# with a chance of 1 in 2**7 or so, when two share the port.
_WARM_ROUNDS = 5


@dataclass
class Report:
    cases: int
    seconds: float
    by_mutation: dict[str, int]
    by_ending: dict[str, int]
    acknowledged: int
    missing: list[str]  # acknowledged, yet neither in the archive nor in failed/
    hung: list[str]  # connections the receiver did not close in time
    connect_errors: int
    flood_connections: int
    flood_held: int
    receivers: list[int]
    dead: list[int]
    exited_lines: int
    rss_kb: dict[int, tuple[int, int, int]]
    descriptors: dict[int, tuple[int, int]]  # pid: (baseline, after)
    part_files_left: int
    ready_left: int
    broken_log_lines: list[str] = field(default_factory=list)
    unhandled_errors: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.dead or self.exited_lines:
            found.append(f"receivers died: {self.dead}, {self.exited_lines} process.exited")
        if self.hung:
            found.append(f"{len(self.hung)} connections hung: {self.hung[:5]}")
        if self.flood_held:
            found.append(f"{self.flood_held} flood connections held past the timeout")
        if self.missing:
            found.append(f"{len(self.missing)} acknowledged objects lost: {self.missing[:5]}")
        if self.part_files_left:
            found.append(f"{self.part_files_left} part files left in incoming/")
        leaked = {pid: fds for pid, fds in self.descriptors.items() if fds[1] != fds[0]}
        if leaked:
            found.append(f"descriptors not back at baseline: {leaked}")
        if self.broken_log_lines:
            found.append(f"{len(self.broken_log_lines)} log lines are not JSON objects")
        if self.unhandled_errors:
            found.append(f"unhandled exceptions logged: {self.unhandled_errors[:3]}")
        return found

    def lines(self) -> list[str]:
        rss = ", ".join(
            f"{pid}: {a // 1024}→{b // 1024}→{c // 1024} MB"
            for pid, (a, b, c) in self.rss_kb.items()
        )
        fds = ", ".join(f"{pid}: {a}→{b}" for pid, (a, b) in self.descriptors.items())
        return [
            f"inputs: {self.cases} connections + {self.flood_connections} flood connections "
            f"in {self.seconds:.0f} s",
            f"mutations: {dict(self.by_mutation)}",
            f"endings: {dict(self.by_ending)}",
            f"acknowledged with Success: {self.acknowledged}, lost: {len(self.missing)}",
            f"hung connections: {len(self.hung)}, flood connections held: {self.flood_held}, "
            f"connect errors: {self.connect_errors}",
            f"receivers {self.receivers}: dead {self.dead}, process.exited lines "
            f"{self.exited_lines}",
            f"RSS first→peak→last: {rss}",
            f"descriptors baseline→after: {fds}",
            f"left in incoming/: {self.part_files_left}, in ready/: {self.ready_left}",
            f"log lines that are not one JSON object: {len(self.broken_log_lines)}, "
            f"unhandled exceptions logged: {len(self.unhandled_errors)}",
        ]


def _receivers_that_stored(log_text: str) -> set[int]:
    """Pids of the receivers that logged an association released after storing objects."""
    return {
        entry["pid"]
        for entry in log_entries(log_text)
        if entry.get("event") == "association.released" and entry.get("objects")
    }


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _settle(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def run(
    *,
    port: int,
    spool: Path,
    archive: Path,
    receive_log: Path,
    logs: list[Path],
    cases: int,
    seed: int,
    concurrency: int,
    close_within: float,
    floods: int,
    settle_s: float = 60.0,
) -> Report:
    _raise_file_limit()
    pids = live_checks.receiver_pids(receive_log.read_text())
    # Clean sessions first, until every receiver has stored one: each then opens what it keeps
    # open (its queue connection, when it pushes the first ref; filed means pushed).
    for round_ in range(_WARM_ROUNDS):
        clean = [
            network.Case(
                -n, "none", "wait", [b"".join(streams.session([b"1.2.826.0.1.9.%d" % n])[0])]
            )
            for n in range(8 * round_ + 1, 8 * round_ + 9)
        ]
        asyncio.run(_run_all(port, clean, close_within))
        if set(pids) <= _receivers_that_stored(receive_log.read_text()):
            break
    else:
        raise AssertionError(f"a receiver of {pids} stored none of {8 * _WARM_ROUNDS} sessions")
    _settle(lambda: not live_checks.ready_files(spool), settle_s)
    baseline = {pid: live_checks.open_descriptors(pid) for pid in pids}
    started = time.monotonic()
    with live_checks.Watch(pids) as watch:
        outcomes, flood_held = asyncio.run(
            network.campaign(
                port,
                cases,
                seed=seed,
                concurrency=concurrency,
                close_within=close_within,
                floods=floods,
            )
        )
        seconds = time.monotonic() - started
        _settle(
            lambda: not live_checks.part_files(spool) and not live_checks.ready_files(spool),
            settle_s,
        )
        _settle(
            lambda: all(live_checks.open_descriptors(pid) <= baseline[pid] for pid in pids),
            settle_s,
        )
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    after = {pid: live_checks.open_descriptors(pid) for pid in alive}
    acknowledged = {uid for outcome in outcomes for uid in outcome.acknowledged}
    stored = live_checks.stored_uids(archive, spool / "failed")
    log_text = "\n".join(path.read_text(errors="replace") for path in logs)
    return Report(
        cases=len(outcomes),
        seconds=seconds,
        by_mutation=collections.Counter(o.case.mutation for o in outcomes),
        by_ending=collections.Counter(o.case.ending for o in outcomes),
        acknowledged=len(acknowledged),
        missing=sorted(acknowledged - stored),
        hung=[
            f"case {o.case.number} ({o.case.mutation}, {o.case.ending}): {o.error}"
            for o in outcomes
            if o.error.startswith("not closed")
        ],
        connect_errors=sum(o.error.startswith("connect") for o in outcomes),
        flood_connections=200 * floods,
        flood_held=flood_held,
        receivers=pids,
        dead=[pid for pid in pids if pid not in alive],
        exited_lines=log_text.count('"process.exited"'),
        rss_kb=watch.summary(),
        descriptors={pid: (baseline[pid], after.get(pid, -1)) for pid in pids},
        part_files_left=len(live_checks.part_files(spool)),
        ready_left=len(live_checks.ready_files(spool)),
        broken_log_lines=live_checks.broken_log_lines(*logs),
        unhandled_errors=live_checks.unhandled_errors(*logs),
    )


async def _run_all(port: int, cases: list[network.Case], close_within: float) -> None:
    for case in cases:
        outcome = await network.run_case(port, case, close_within)
        assert outcome.closed_by_receiver and outcome.acknowledged, outcome
