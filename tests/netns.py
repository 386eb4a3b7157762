"""Hosts for the multi-host test: Linux network namespaces on one bridge, each with its own
hostname, sharing the file system (the spool and the archive) as an NFS mount would.

Made with iproute2 (`ip netns`, veth pairs, a bridge) and util-linux's `unshare --uts`; removed
whatever happens, processes first.
"""

import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class NamespacesUnavailable(Exception):
    """Raised when this machine or user cannot make network namespaces (the reason)."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise NamespacesUnavailable(f"`ip {' '.join(args)}`: {result.stderr.strip()}")


@dataclass
class Host:
    """One network namespace with one address on the bridge, named `name` in its UTS namespace."""

    name: str
    namespace: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self, command: Sequence[str], log_path: Path, cwd: Path) -> subprocess.Popen:
        """Run `command` on this host, its output in `log_path`."""
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [
                    *("ip", "netns", "exec", self.namespace, "unshare", "--uts"),
                    *("sh", "-c", 'hostname "$0" && exec "$@"', self.name, *command),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every live process in this host's namespace, whoever started it (zombies wait only
        for their reaper)."""
        result = subprocess.run(
            ["ip", "netns", "pids", self.namespace], capture_output=True, text=True
        )
        return [int(pid) for pid in result.stdout.split() if not _zombie(int(pid))]

    def kill(self) -> None:
        """SIGKILL every process of this host, until none is left: the host dies. Again and
        again, since a parent may fork once more before its own SIGKILL lands."""
        deadline = time.monotonic() + 10
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        for process in self.processes:
            process.wait()


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # gone already
    return stat.rpartition(")")[2].split()[0] == "Z"


def _subnet() -> str:
    """A /24 of 10.213.0.0/16 that no route of this machine uses yet: "10.213.N"."""
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    free = [n for n in range(256) if f"10.213.{n}." not in routes]
    return f"10.213.{random.choice(free)}"


@contextlib.contextmanager
def hosts(names: Sequence[str]) -> Iterator[dict[str, Host]]:
    """One namespace per name on a fresh bridge; raises NamespacesUnavailable if not allowed."""
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        raise NamespacesUnavailable("iproute2 (ip) or util-linux (unshare) is not installed")
    if os.geteuid() != 0:
        raise NamespacesUnavailable("making network namespaces needs root")
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise NamespacesUnavailable(f"`unshare --uts`: {probe.stderr.strip()}")
    tag = f"pi{os.getpid() % 100000}"
    bridge, subnet = f"{tag}br", _subnet()
    made: dict[str, Host] = {}
    try:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{subnet}.1/24", "dev", bridge)
        _ip("link", "set", bridge, "up")
        for index, name in enumerate(names):
            host = Host(name, f"{tag}-{name}", f"{subnet}.{10 + index}")
            outside, inside = f"{tag}h{index}", f"{tag}n{index}"
            _ip("netns", "add", host.namespace)
            made[name] = host
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("link", "set", inside, "netns", host.namespace)
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", inside)
            _ip("-n", host.namespace, "link", "set", inside, "up")
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        yield made
    finally:
        for host in made.values():
            host.kill()
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
