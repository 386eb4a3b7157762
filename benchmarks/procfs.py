"""What the kernel says about a process tree: CPU time and peak memory, read from /proc.

The benchmark measures every contender from outside, as an operator would with `ps`, so it needs
no hook in any of them. CPU times come from /proc/<pid>/stat in clock ticks (10 ms here): a
process's own time (utime + stime, all its threads), and the time of the children it has waited
for (cutime + cstime), which is how storescp's forked children are counted once they are gone.
Peak memory is VmHWM from /proc/<pid>/status; it vanishes with the process, so `Watch` reads it
while the process lives.
"""

import os
import threading
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


@dataclass(frozen=True)
class Reading:
    """One process at one moment; `peak_rss_kb` is 0 for a zombie (it has no memory left)."""

    pid: int
    comm: str
    own_ticks: int
    reaped_ticks: int
    peak_rss_kb: int


def read(pid: int) -> Reading | None:
    """The process `pid` now, or None if it is gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        status = (PROC / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may itself hold spaces or parentheses.
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state) of proc(5); utime, stime, cutime, cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    peak = 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1])
            break
    return Reading(pid, comm, utime + stime, cutime + cstime, peak)


def children(pid: int) -> list[int]:
    """The live (and zombie) children of every thread of `pid`."""
    found = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def read_tree(root: int) -> dict[int, Reading]:
    """`root` and all its descendants, by pid."""
    readings: dict[int, Reading] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        reading = read(pid)
        if reading is not None and pid not in readings:
            readings[pid] = reading
            pending.extend(children(pid))
    return readings


def total_ticks(readings: dict[int, Reading]) -> int:
    return sum(r.own_ticks + r.reaped_ticks for r in readings.values())


class Watch:
    """Reads a tree every `interval` seconds in a thread and keeps, for every pid it saw, the
    highest VmHWM: a process that exits before the end of a run still has its peak recorded
    (if it lived long enough to be seen)."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root = root
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self.comms: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procfs-watch", daemon=True)

    def __enter__(self) -> "Watch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.note(read_tree(self.root))

    def note(self, readings: dict[int, Reading]) -> None:
        for pid, reading in readings.items():
            self.peaks[pid] = max(self.peaks.get(pid, 0), reading.peak_rss_kb)
            self.comms.setdefault(pid, reading.comm)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.note(read_tree(self.root))
