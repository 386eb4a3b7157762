"""One measured run: one contender, one case, one round.

Start the contender; wait until it answers a C-ECHO and has gone quiet (every process started,
imports done: the tree's CPU time stops growing), so start-up is neither timed nor counted; read
its process tree; send; for pacs-ingest also wait until every object is at its archive path; read
the tree again once transient children are gone; stop the contender and check what it stored.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import procfs
from benchmarks.contenders import AE_TITLE, ROOT, Contender
from benchmarks.senders import Plan, SendError, send

READY_TIMEOUT_S = 120.0
_QUIET_WINDOW_S = 0.5
_QUIET_TICKS = 2  # CPU ticks a whole tree may use in a quiet window (timers, heartbeats)
_SETTLE_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 30.0
_POLL_S = 0.02


class RunError(Exception):
    """The contender did not start, died, or did not store what it acknowledged."""


@dataclass(frozen=True)
class Trial:
    """What one run does; `archive_paths` are where pacs-ingest must file each object."""

    round: int
    case: str
    contender: Contender
    plan: Plan
    objects: int
    bytes: int
    run_dir: Path
    timeout: float
    archive_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Process:
    pid: int
    name: str
    role: str
    cpu_ms: float | None
    peak_rss_kb: int


@dataclass
class Run:
    """The raw figures of one run. CPU is what each role spent between the two readings of the
    tree (a process's own `cpu_ms` is None if it was gone by then: its time is in its parent's
    reaped time). Peak RSS is the highest VmHWM seen; a process shorter than the watch's
    interval (storescp's child for one object) may not be seen at all."""

    round: int
    case: str
    contender: str
    objects: int
    bytes: int
    acknowledged_s: float | None = None
    filed_s: float | None = None
    cpu_ms: dict[str, float] = field(default_factory=dict)
    peak_rss_kb: dict[str, int] = field(default_factory=dict)
    processes: list[Process] = field(default_factory=list)
    sender_cpu_ms: float = 0.0
    error: str | None = None


class Server:
    """The contender's root process, in a session of its own so that all of it can be stopped."""

    def __init__(self, argv: list[str], run_dir: Path) -> None:
        with open(run_dir / "server.log", "wb") as log:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # storescp reads TCP_NODELAY as storescu does; Nagle would stall its replies.
                env={**os.environ, "TCP_NODELAY": "1"},
                start_new_session=True,
            )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM; SIGKILL for the whole session after _STOP_TIMEOUT_S; then whatever of the
        session is left (a child the root did not stop) goes too."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _echoes(port: int) -> bool:
    echo = ["echoscu", "-aec", AE_TITLE, "-to", "5", "127.0.0.1", str(port)]
    return subprocess.run(echo, capture_output=True, check=False).returncode == 0


def _wait_ready(trial: Trial, server: Server, port: int) -> None:
    """Until the contender answers C-ECHO, all its processes started and its tree is quiet.

    Nothing here can be waited on but the contender's own state, so this polls."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    steps = (
        ("accept connections", lambda: _accepts(port)),
        ("answer C-ECHO", lambda: _echoes(port)),
        (
            "start its processes",
            lambda: trial.contender.ready(trial.run_dir, procfs.read_tree(server.pid)),
        ),
        ("go quiet after start-up", lambda: _quiet(server.pid)),
    )
    for what, done in steps:
        while not done():
            if not server.alive():
                raise RunError(f"exited {server.process.returncode} before it could {what}")
            if time.monotonic() > deadline:
                raise RunError(f"did not {what} within {READY_TIMEOUT_S:.0f} s")
            time.sleep(_POLL_S * 5)


def _quiet(root: int) -> bool:
    before = procfs.total_ticks(procfs.read_tree(root))
    time.sleep(_QUIET_WINDOW_S)
    return procfs.total_ticks(procfs.read_tree(root)) - before <= _QUIET_TICKS


def wait_filed(trial: Trial, server: Server, deadline: float) -> None:
    """Until every one of `trial.archive_paths` exists below the run's archive (a worker renames
    each object there whole, so existing means filed); RunError if `server` dies or `deadline`
    (monotonic) passes first."""
    archive = trial.run_dir / "archive"
    pending = [archive / path for path in trial.archive_paths]
    while pending:
        pending = [path for path in pending if not path.exists()]
        if not pending:
            return
        if not server.alive():
            raise RunError(
                f"exited {server.process.returncode} with {len(pending)} objects not filed"
            )
        if time.monotonic() > deadline:
            raise RunError(f"{len(pending)} objects not filed in time, e.g. {pending[0]}")
        time.sleep(_POLL_S)


def _settle(root: int, pids: set[int]) -> dict[int, procfs.Reading]:
    """The tree once the processes started during the run (storescp's children) are gone and
    reaped, so that their CPU is in their parent's reaped time; at most _SETTLE_TIMEOUT_S."""
    deadline = time.monotonic() + _SETTLE_TIMEOUT_S
    readings = procfs.read_tree(root)
    while set(readings) - pids and time.monotonic() < deadline:
        time.sleep(_POLL_S)
        readings = procfs.read_tree(root)
    return readings


def _account(
    run: Run,
    trial: Trial,
    before: dict[int, procfs.Reading],
    after: dict[int, procfs.Reading],
    watch: procfs.Watch,
) -> None:
    """Fill in CPU per role and process, and peak RSS per role and process."""
    contender = trial.contender
    names = contender.names(trial.run_dir, watch.root, watch.comms)
    cpu: dict[str, float] = defaultdict(float)
    own_ms: dict[int, float] = {}
    for pid, reading in after.items():
        earlier = before.get(pid)
        own = reading.own_ticks - (earlier.own_ticks if earlier else 0)
        reaped = reading.reaped_ticks - (earlier.reaped_ticks if earlier else 0)
        role = contender.role(names.get(pid, reading.comm))
        own_ms[pid] = own * procfs.CLOCK_TICK_MS
        cpu[role] += own_ms[pid]
        cpu["children" if contender.forks_children else role] += reaped * procfs.CLOCK_TICK_MS
    peaks: dict[str, int] = {}
    for pid, peak in sorted(watch.peaks.items()):
        name = names.get(pid, watch.comms[pid])
        role = contender.role(name)
        peaks[role] = max(peaks.get(role, 0), peak)
        run.processes.append(Process(pid, name, role, own_ms.get(pid), peak))
    run.cpu_ms = dict(cpu)
    run.peak_rss_kb = peaks


def measure(trial: Trial) -> Run:
    """Run `trial`; a failure is recorded in Run.error, with the contender stopped."""
    run = Run(trial.round, trial.case, trial.contender.key, trial.objects, trial.bytes)
    trial.run_dir.mkdir(parents=True)
    port = _free_port()
    server = Server(trial.contender.command(trial.run_dir, port), trial.run_dir)
    try:
        _wait_ready(trial, server, port)
        with procfs.Watch(server.pid) as watch:
            before = procfs.read_tree(server.pid)
            start = time.monotonic()
            sent = send(trial.plan, port, trial.run_dir, trial.timeout)
            run.acknowledged_s = time.monotonic() - start
            run.sender_cpu_ms = sent.cpu_ms
            if trial.contender.files_later:
                wait_filed(trial, server, start + trial.timeout)
                run.filed_s = time.monotonic() - start
            after = _settle(server.pid, set(before))
        server.stop()
        _account(run, trial, before, after, watch)
        stored = trial.contender.stored(trial.run_dir)
        if stored != trial.objects:
            raise RunError(f"stored {stored} of {trial.objects} objects")
    except (RunError, SendError) as exc:
        run.error = f"{exc} (log: {trial.run_dir / 'server.log'})"
    finally:
        server.stop()
    return run
