"""The senders: DCMTK storescu processes (TCP_NODELAY=1, as the reference SCP's default) that
share the corpus out between them.

- `1`: one storescu, one association for the whole corpus.
- `4`: four storescu, one association each, the corpus dealt out between them.
- `per-object`: four senders, each a loop running one storescu per object, so every object comes
  on an association of its own, as from modalities that connect for each image. Every such
  association proposes storescu's 128 presentation contexts, and the rate includes starting a
  storescu per object (its CPU is the senders', reported apart).
"""

import contextlib
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.contenders import AE_TITLE

# One storescu per line of its list, stopping at the first that fails (its status is kept).
_PER_OBJECT_LOOP = 'while IFS= read -r f; do storescu -aec "$1" 127.0.0.1 "$2" "$f" || exit; done'


class SendError(Exception):
    """A sender failed or did not finish in time; the message says which and why."""


@dataclass(frozen=True)
class Senders:
    key: str
    label: str
    count: int
    per_object: bool


MODES = {
    mode.key: mode
    for mode in (
        Senders("1", "1 association", 1, per_object=False),
        Senders("4", "4 associations", 4, per_object=False),
        Senders("per-object", "4 senders, an association per object", 4, per_object=True),
    )
}


@dataclass(frozen=True)
class Plan:
    """What each sender sends: a folder of links (one association) or a list of files."""

    mode: Senders
    inputs: tuple[Path, ...]


@dataclass(frozen=True)
class Sent:
    seconds: float
    cpu_ms: float


def plan(mode: Senders, corpus: list[Path], folder: Path) -> Plan:
    """Deal `corpus` out between the senders of `mode`, in `folder` (made here)."""
    folder.mkdir(parents=True)
    inputs = []
    for index in range(mode.count):
        share = corpus[index :: mode.count]
        if mode.per_object:
            listing = folder / f"sender-{index}.list"
            listing.write_text("".join(f"{path}\n" for path in share))
            inputs.append(listing)
        else:
            links = folder / f"sender-{index}"
            links.mkdir()
            for path in share:
                (links / path.name).symlink_to(path)
            inputs.append(links)
    return Plan(mode, tuple(inputs))


def _start(plan: Plan, index: int, port: int, log: Path) -> subprocess.Popen:
    """Sender `index`, in a session of its own so that a timeout can kill it with its children."""
    source = plan.inputs[index]
    if plan.mode.per_object:
        argv = ["sh", "-c", _PER_OBJECT_LOOP, "sh", AE_TITLE, str(port)]
    else:
        argv = ["storescu", "-aec", AE_TITLE, "+sd", "127.0.0.1", str(port), str(source)]
    with (
        open(log, "wb") as err,
        open(source if plan.mode.per_object else os.devnull, "rb") as stdin,
    ):
        return subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "TCP_NODELAY": "1"},
            start_new_session=True,
        )


def send(plan: Plan, port: int, log_dir: Path, timeout: float) -> Sent:
    """Run every sender at once against `port`; the seconds until the last one finished, and
    the CPU they spent (storescu and, per object, the loop around it)."""
    logs = [log_dir / f"sender-{index}.log" for index in range(plan.mode.count)]
    start = time.monotonic()
    senders = [_start(plan, index, port, log) for index, log in enumerate(logs)]

    def kill_all() -> None:
        for sender in senders:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sender.pid, signal.SIGKILL)

    watchdog = threading.Timer(timeout, kill_all)
    watchdog.start()
    statuses, cpu_s = [], 0.0
    try:
        for sender in senders:
            _, status, usage = os.wait4(sender.pid, 0)
            sender.returncode = os.waitstatus_to_exitcode(status)
            statuses.append(sender.returncode)
            cpu_s += usage.ru_utime + usage.ru_stime
    finally:
        watchdog.cancel()
    seconds = time.monotonic() - start
    if seconds >= timeout:
        raise SendError(f"the senders did not finish within {timeout:.0f} s")
    for log, code in zip(logs, statuses, strict=True):
        if code != 0:
            tail = log.read_text(errors="replace")[-400:].strip()
            raise SendError(f"storescu exited {code}: {tail or '(no message)'} (see {log})")
    return Sent(seconds, cpu_s * 1000)
