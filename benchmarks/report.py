"""All rounds summarised: per case and contender the median and range of the rates, the ratio to
DCMTK measured round by round (the machine's speed drifts between rounds, not within one), CPU
per object and peak memory per role; as one Markdown table, and as JSON beside the raw figures.

MB are 10^6 bytes, for throughput and for memory alike.
"""

import statistics
from dataclasses import dataclass
from typing import Any

from benchmarks.cases import Case
from benchmarks.contenders import Contender
from benchmarks.run import Run

YARDSTICK = "dcmtk"
ACKNOWLEDGED, FILED = "acknowledged", "filed"
RSS_LIMIT_MB = 200  # issue 9: a 1 GB object with every pacs-ingest process under 200 MB


def _mb(kilobytes: int) -> float:
    return kilobytes * 1024 / 1e6


@dataclass(frozen=True)
class Line:
    """One row of the table: a contender in a case, timed until `phase`."""

    case: Case
    contender: Contender
    phase: str
    runs: tuple[Run, ...]
    errors: tuple[str, ...]

    def seconds(self, run: Run) -> float:
        seconds = run.filed_s if self.phase == FILED else run.acknowledged_s
        assert seconds is not None  # only successful runs are kept
        return seconds

    def rates(self) -> list[float]:
        return [run.objects / self.seconds(run) for run in self.runs]

    def throughputs(self) -> list[float]:
        return [run.bytes / 1e6 / self.seconds(run) for run in self.runs]

    def ratios(self, yardstick: dict[tuple[str, int], float]) -> list[float]:
        """Rate over DCMTK's in the same round, for the rounds where both succeeded."""
        return [
            run.objects / self.seconds(run) / yardstick[self.case.key, run.round]
            for run in self.runs
            if (self.case.key, run.round) in yardstick
        ]

    def _roles(self, roles: set[str]) -> list[str]:
        order = self.contender.roles
        return sorted(
            roles, key=lambda role: (order.index(role) if role in order else len(order), role)
        )

    def cpu_per_object(self) -> dict[str, float]:
        roles = self._roles({role for run in self.runs for role in run.cpu_ms})
        return {
            role: statistics.median(run.cpu_ms.get(role, 0.0) / run.objects for run in self.runs)
            for role in roles
        }

    def peak_rss_mb(self) -> dict[str, float]:
        roles = self._roles({role for run in self.runs for role in run.peak_rss_kb})
        return {role: max(_mb(run.peak_rss_kb.get(role, 0)) for run in self.runs) for role in roles}

    def largest_process(self) -> tuple[float, str]:
        """The largest peak RSS (MB) of any process in any run, and whose it was."""
        peaks = [(_mb(p.peak_rss_kb), p.name) for run in self.runs for p in run.processes]
        return max(peaks, default=(0.0, "none"))


def lines(cases: list[Case], contenders: list[Contender], runs: list[Run]) -> list[Line]:
    found = []
    for case in cases:
        for contender in contenders:
            mine = [r for r in runs if r.case == case.key and r.contender == contender.key]
            good = tuple(r for r in mine if r.error is None)
            errors = tuple(r.error for r in mine if r.error is not None)
            phases = (ACKNOWLEDGED, FILED) if contender.files_later else (ACKNOWLEDGED,)
            found.extend(Line(case, contender, phase, good, errors) for phase in phases)
    return found


def yardstick_rates(runs: list[Run]) -> dict[tuple[str, int], float]:
    return {
        (run.case, run.round): run.objects / run.acknowledged_s
        for run in runs
        if run.contender == YARDSTICK and run.error is None and run.acknowledged_s
    }


def _num(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def _span(values: list[float]) -> str:
    if not values:
        return "—"
    low, mid, high = min(values), statistics.median(values), max(values)
    return _num(mid) if _num(low) == _num(high) else f"{_num(mid)} ({_num(low)}–{_num(high)})"  # noqa: RUF001


def _roles(values: dict[str, float], digits: str = "") -> str:
    return " · ".join(
        f"{role} {format(value, digits) if digits else _num(value)}"
        for role, value in values.items()
    )


def _row(line: Line, yardstick: dict[tuple[str, int], float]) -> list[str]:
    name = line.contender.label
    if line.contender.files_later:
        name += f", {line.phase}"
    if line.errors:
        name += f" ({len(line.errors)} of {len(line.errors) + len(line.runs)} rounds failed)"
    if not line.runs:
        return [line.case.label, name, f"failed: {line.errors[0]}", "", "", "", ""]
    # CPU and memory are measured until the end of the run: shown once, on its last row.
    last = line.phase == FILED or not line.contender.files_later
    return [
        line.case.label,
        name,
        _span(line.rates()),
        _span(line.throughputs()),
        _span(line.ratios(yardstick)),
        _roles(line.cpu_per_object()) if last else "",
        _roles(line.peak_rss_mb(), ",.0f") if last else "",
    ]


def markdown(table: list[Line], runs: list[Run]) -> str:
    """The table (a case's label only on its first row), then the 1 GB memory verdict."""
    yardstick = yardstick_rates(runs)
    header = ["Case", "Contender", "objects/s", "MB/s", "× DCMTK", "CPU ms/object", "peak RSS MB"]  # noqa: RUF001
    out = ["| " + " | ".join(header) + " |", "|---|---|--:|--:|--:|---|---|"]
    previous = None
    for line in table:
        cells = _row(line, yardstick)
        if line.case.key == previous:
            cells[0] = ""
        previous = line.case.key
        out.append("| " + " | ".join(cells) + " |")
    out.append(_sender_costs(table, runs))
    out.extend(_memory_verdicts(table))
    return "\n".join(out) + "\n"


def _sender_costs(table: list[Line], runs: list[Run]) -> str:
    """What the senders spent per object, per case: where it is large (a storescu started for
    every object), the senders bound the rate, whoever receives."""
    labels = {line.case.key: line.case.label for line in table}
    costs: dict[str, list[float]] = {}
    for run in runs:
        if run.error is None:
            costs.setdefault(run.case, []).append(run.sender_cpu_ms / run.objects)
    spent = " · ".join(
        f"{labels[case]} {_num(statistics.median(values))}" for case, values in costs.items()
    )
    return f"\nSenders' CPU ms/object (storescu, median of all runs): {spent}."


def _memory_verdicts(table: list[Line]) -> list[str]:
    verdicts = []
    for line in table:
        if line.case.corpus.key == "1g" and line.phase == FILED and line.runs:
            peak, name = line.largest_process()
            verdict = "yes" if peak < RSS_LIMIT_MB else "no"
            verdicts.append(
                f"\n{line.case.corpus.label} object: every {line.contender.label} process "
                f"stayed under {RSS_LIMIT_MB} MB RSS: **{verdict}** (largest: {name}, "
                f"{peak:.0f} MB)."
            )
    return verdicts


def summary(table: list[Line], runs: list[Run]) -> list[dict[str, Any]]:
    """The table's figures, unrounded, for the JSON file."""
    yardstick = yardstick_rates(runs)

    def stats(values: list[float]) -> dict[str, float] | None:
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    return [
        {
            "case": line.case.key,
            "contender": line.contender.key,
            "phase": line.phase,
            "rounds": len(line.runs),
            "errors": list(line.errors),
            "objects_per_s": stats(line.rates()),
            "mb_per_s": stats(line.throughputs()),
            "ratio_to_dcmtk": stats(line.ratios(yardstick)),
            "cpu_ms_per_object": line.cpu_per_object() if line.runs else {},
            "peak_rss_mb": line.peak_rss_mb() if line.runs else {},
            "largest_process_mb": line.largest_process()[0] if line.runs else None,
            "sender_cpu_ms_per_object": stats(
                [run.sender_cpu_ms / run.objects for run in line.runs]
            ),
        }
        for line in table
    ]
