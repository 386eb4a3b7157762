"""Run N copies of a process, restart the ones that die, stop them all on request.

Receivers and workers both fan out into processes (one Python process uses one core at most).
Children are started with the "spawn" method: the parent has threads, and forking a threaded
process can hand a child a lock that nobody will ever release.
"""

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from pacs_ingest.shared import log
from pacs_ingest.shared.exit_codes import ExitCode

# SIGTERM to exit: the README's promise, inside the 20 s deploy's units wait before SIGKILL.
SHUTDOWN_BUDGET_S = 15.0
# How long a child may take to stop (a receiver drains its associations) before its parent
# SIGKILLs it; the rest of the budget is the parent's own teardown.
CHILD_STOP_S = SHUTDOWN_BUDGET_S - 2.0
_RESTART_DELAY_S = 1.0


class StopSignal:
    """Set by SIGTERM or SIGINT; waited on by the main thread.

    A threading.Event cannot be set from a signal handler: the handler runs on the main thread,
    possibly while that thread holds the Event's lock, and a second signal then deadlocks it. A
    flag plus a self-pipe takes no lock.
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._set = False

    def install(self) -> "StopSignal":
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.set()

    def set(self) -> None:
        self._set = True
        with contextlib.suppress(BlockingIOError):  # the pipe is full of wake-ups already
            os.write(self._write, b"x")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or `timeout` seconds passed; True if set."""
        if not self._set:
            select.select([self._read], [], [], timeout)
        return self._set


def _terminate_when_parent_dies() -> None:
    """Turn the parent's death (even by SIGKILL) into our SIGTERM: a clean stop, no orphans."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def group_index() -> int:
    """Which process of its ProcessGroup this child is: its name is `<group>-<index>`."""
    return int(multiprocessing.current_process().name.rpartition("-")[2])


def _child_main(target: Callable[..., None], *args: Any) -> None:
    _terminate_when_parent_dies()
    target(*args)


@dataclass
class ProcessGroup:
    """`count` processes running `target(*args)`, named `name`-<i>."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    count: int
    restart: bool = True
    processes: list[BaseProcess | None] = field(default_factory=list)
    _context: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))
    _dead_since: dict[int, float] = field(default_factory=dict)
    _stopping: bool = False

    def start(self) -> None:
        self.processes = [self._spawn(i) for i in range(self.count)]

    def _spawn(self, index: int) -> BaseProcess:
        process = self._context.Process(
            target=_child_main,
            args=(self.target, *self.args),
            name=f"{self.name}-{index}",
            daemon=False,
        )
        process.start()
        log.event("process.started", process=process.name, pid=process.pid)
        return process

    def _live(self) -> list[BaseProcess]:
        return [p for p in self.processes if p is not None and p.is_alive()]

    def reap(self, now: float) -> int | None:
        """Restart children dead for a second (if `restart`); CONFIG if one ended with it.

        `now` is a time.monotonic() reading. The delay keeps a child that dies at once from
        spinning the machine.
        """
        for index, process in enumerate(self.processes):
            if process is None:
                if self.restart and now - self._dead_since[index] >= _RESTART_DELAY_S:
                    self.processes[index] = self._spawn(index)
                    del self._dead_since[index]
                continue
            if process.is_alive():
                continue
            code = process.exitcode
            log.warning("process.exited", process=process.name, pid=process.pid, exitcode=code)
            if code == ExitCode.CONFIG:
                return ExitCode.CONFIG
            self.processes[index] = None
            self._dead_since[index] = now
        return None

    def all_exited(self) -> bool:
        return not self._live()

    def exit_status(self) -> int:
        """0 if every child that exited so far exited 0 (a group not restarting its children);
        else the first failed child's exit status as a shell reports it: its exit code, or
        128 + N for a child killed by signal N."""
        for process in self.processes:
            if process is not None and (code := process.exitcode):
                log.warning("process.failed", process=process.name, pid=process.pid, exitcode=code)
                return 128 - code if code < 0 else code
        return ExitCode.OK

    def terminate(self) -> None:
        """SIGTERM each child once: a second SIGTERM means "now" to an rq worker."""
        if self._stopping:
            return
        self._stopping = True
        for process in self._live():
            process.terminate()

    def join(self, deadline: float) -> None:
        """Wait for the children until `deadline` (monotonic), then SIGKILL what is left."""
        for process in self._live():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("process.killed", process=process.name, pid=process.pid)
                process.kill()
                process.join()


class Supervised(Protocol):
    def reap(self, now: float) -> int | None:
        """Restart what died; an exit code if the whole command must stop."""


def supervise(parts: list[Supervised], stop: StopSignal) -> int:
    """Keep `parts` (process groups, `up`'s embedded server) running until `stop` is set; 0, or
    ExitCode.CONFIG."""
    while not stop.wait(0.5):
        for part in parts:
            if part.reap(time.monotonic()) == ExitCode.CONFIG:
                return ExitCode.CONFIG
    return ExitCode.OK


def stop_all(groups: list[ProcessGroup]) -> None:
    """Stop every group at once, sharing one deadline: SIGTERM, wait CHILD_STOP_S, SIGKILL what
    is left."""
    for group in groups:
        group.terminate()
    deadline = time.monotonic() + CHILD_STOP_S
    for group in groups:
        group.join(deadline)
