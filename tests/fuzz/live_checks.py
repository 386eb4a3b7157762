"""What a network fuzzing run must leave behind, read from outside the receiver: its processes
alive (same pids), RSS sampled through the run, descriptors back at their baseline, incoming/
empty, every acknowledged object in the archive or in failed/, and a log of intact JSON lines."""

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pacs_ingest.shared.part10 import FileMetaError, read_file_meta
from tests.helpers import log_entries, started_processes, waiting_objects


def receiver_pids(log_text: str) -> list[int]:
    return [pid for name, pid in started_processes(log_text) if name.startswith("receiver")]


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@dataclass
class Watch:
    """Samples the RSS of each receiver every `interval` s while the run lasts."""

    pids: list[int]
    interval: float = 0.2
    samples: dict[int, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "Watch":
        self.samples = {pid: [rss_kb(pid)] for pid in self.pids}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for pid in self.pids:
                try:
                    self.samples[pid].append(rss_kb(pid))
                except FileNotFoundError:
                    self.samples[pid].append(-1)  # died: the caller sees it

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()

    def summary(self) -> dict[int, tuple[int, int, int]]:
        """pid: (first, peak, last) RSS in kB."""
        return {pid: (s[0], max(s), s[-1]) for pid, s in self.samples.items()}


def broken_log_lines(*logs: Path) -> list[str]:
    """Lines that are not one whole JSON object."""
    broken = []
    for path in logs:
        for line in path.read_text(errors="replace").splitlines():
            try:
                if not isinstance(json.loads(line), dict):
                    broken.append(line)
            except ValueError:
                broken.append(line)
    return broken


def unhandled_errors(*logs: Path) -> list[str]:
    """Events of an exception nothing handled: a traceback asyncio (or logging) caught."""
    return [
        str(entry.get("event", ""))[:200]
        for path in logs
        for entry in log_entries(path.read_text(errors="replace"))
        if "exc" in entry
    ]


def stored_uids(*folders: Path) -> set[str]:
    """The Media Storage SOP Instance UID (the C-STORE's Affected SOP Instance UID) of every
    Part 10 file under `folders`."""
    uids = set()
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".json":
                try:
                    with path.open("rb") as fp:
                        uids.add(read_file_meta(fp).media_storage_sop_instance_uid)
                except (FileMetaError, OSError):
                    continue
    return uids


def part_files(spool: Path) -> list[Path]:
    return [path for path in (spool / "incoming").rglob("*") if path.is_file()]


def ready_files(spool: Path) -> list[Path]:
    return waiting_objects(spool)
