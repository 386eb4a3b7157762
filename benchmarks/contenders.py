"""The C-STORE SCPs the benchmark compares: how to start each one, where its objects land, and
what to call each of its processes.

Every contender runs as it ships, with its defaults, except where a default would make the run
fail or measure something else (said at the line). All answer Called AE title `INGEST`.
"""

import json
import shutil
import sys
from abc import ABC, abstractmethod
from pathlib import Path

from benchmarks.procfs import Reading

AE_TITLE = "INGEST"
ROOT = Path(__file__).resolve().parent.parent


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


class Contender(ABC):
    """One SCP. `forks_children`: the reaped CPU of its root process is its children's (counted
    under the role `children`). `files_later`: objects reach their final place after the
    sender was answered, so the run also waits until every one is filed."""

    key: str
    label: str
    forks_children = False
    files_later = False
    roles: tuple[str, ...] = ()  # the order roles are reported in; others follow by name

    def missing(self) -> str | None:
        """Why this contender cannot run here, or None."""
        return None

    @abstractmethod
    def command(self, run_dir: Path, port: int) -> list[str]:
        """The command line that serves `port`, storing below `run_dir` (which exists)."""

    @abstractmethod
    def stored(self, run_dir: Path) -> int:
        """How many objects the run stored."""

    def ready(self, run_dir: Path, readings: dict[int, Reading]) -> bool:
        """Whether every process the contender starts has started."""
        return True

    def names(self, run_dir: Path, root: int, pids: dict[int, str]) -> dict[int, str]:
        """A name for each process of `pids` (pid: command name); `root` is the one started."""
        return {pid: self.label if pid == root else f"{comm} (child)" for pid, comm in pids.items()}

    def role(self, name: str) -> str:
        """The role a process name is reported under (CPU and peak memory are summed or taken
        as a maximum per role)."""
        return name


class Dcmtk(Contender):
    """DCMTK's storescp, one forked child per association: the fastest thing that merely writes
    files (no fsync, no queue, no pattern)."""

    key = "dcmtk"
    label = "DCMTK storescp --fork"
    forks_children = True
    roles = ("storescp", "children")

    def missing(self) -> str | None:
        return None if shutil.which("storescp") else "storescp not on PATH (Debian package dcmtk)"

    def command(self, run_dir: Path, port: int) -> list[str]:
        out = run_dir / "out"
        out.mkdir()
        return ["storescp", "--fork", "-aet", AE_TITLE, "-od", str(out), str(port)]

    def stored(self, run_dir: Path) -> int:
        return count_files(run_dir / "out")

    def names(self, run_dir: Path, root: int, pids: dict[int, str]) -> dict[int, str]:
        return {pid: "storescp" if pid == root else "children" for pid in pids}


class Pynetdicom(Contender):
    """pynetdicom's own storescp application (it decodes each data set and writes it again)."""

    key = "pynetdicom"
    label = "pynetdicom storescp app"

    def command(self, run_dir: Path, port: int) -> list[str]:
        out = run_dir / "out"
        out.mkdir()
        return [
            *(sys.executable, "-m", "pynetdicom", "storescp", "-ba", "127.0.0.1"),
            *("-aet", AE_TITLE, "-od", str(out)),
            # Its 30 s DIMSE timeout runs out while a 1 GB data set is still arriving.
            *("-td", "600"),
            str(port),
        ]

    def stored(self, run_dir: Path) -> int:
        return count_files(run_dir / "out")

    def names(self, run_dir: Path, root: int, pids: dict[int, str]) -> dict[int, str]:
        return {pid: "storescp app" if pid == root else comm for pid, comm in pids.items()}


class Orthanc(Contender):
    """Orthanc with its defaults: it also waits for the disk (SQLite) before answering, and
    indexes every object. HTTP is off; only the DICOM server runs."""

    key = "orthanc"
    label = "Orthanc"

    def missing(self) -> str | None:
        return None if shutil.which("Orthanc") else "Orthanc not on PATH (apt-get install orthanc)"

    def command(self, run_dir: Path, port: int) -> list[str]:
        config = {
            "Name": "benchmark",
            "StorageDirectory": str(run_dir / "storage"),
            "IndexDirectory": str(run_dir / "index"),
            "DicomAet": AE_TITLE,
            "DicomPort": port,
            "HttpServerEnabled": False,
            "RemoteAccessAllowed": False,
            "DicomCheckCalledAet": False,
            "UnknownSopClassAccepted": True,
            "StorageCompression": False,
            "Plugins": [],
        }
        path = run_dir / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        return ["Orthanc", str(path)]

    def stored(self, run_dir: Path) -> int:
        return count_files(run_dir / "storage")

    def names(self, run_dir: Path, root: int, pids: dict[int, str]) -> dict[int, str]:
        return {pid: "Orthanc" if pid == root else comm for pid, comm in pids.items()}


class PacsIngest(Contender):
    """`pacs-ingest up`, seen only through its command line and its log: receivers and workers
    are the processes it logs as `process.started` (receiver-0, worker-1, ...); the embedded
    Redis and `up` itself are `other`."""

    key = "pacs-ingest"
    label = "pacs-ingest"
    files_later = True
    roles = ("receivers", "workers", "other")

    def __init__(self, *, receivers: int, workers: int, filepath: str) -> None:
        self.receivers = receivers
        self.workers = workers
        self.filepath = filepath

    def command(self, run_dir: Path, port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "pacs_ingest", "up", "-b", f"{AE_TITLE}:{port}"),
            *("--directory", str(run_dir / "archive"), "--spool-dir", str(run_dir / "spool")),
            *("--receivers", str(self.receivers), "--workers", str(self.workers)),
            *("--filepath", self.filepath),
        ]

    def stored(self, run_dir: Path) -> int:
        archive = run_dir / "archive"
        return count_files(archive) if archive.exists() else 0

    def started(self, run_dir: Path) -> dict[str, int]:
        """name: pid of every process `up` logged as started (the latest, if one restarted)."""
        started = {}
        for line in (run_dir / "server.log").read_text(errors="replace").splitlines():
            if '"process.started"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "process.started":
                started[str(entry["process"])] = int(entry["pid"])
        return started

    def ready(self, run_dir: Path, readings: dict[int, Reading]) -> bool:
        started = self.started(run_dir)
        return len(started) >= self.receivers + self.workers and all(
            pid in readings for pid in started.values()
        )

    def names(self, run_dir: Path, root: int, pids: dict[int, str]) -> dict[int, str]:
        started = {pid: name for name, pid in self.started(run_dir).items()}
        return {pid: "up" if pid == root else started.get(pid, comm) for pid, comm in pids.items()}

    def role(self, name: str) -> str:
        for prefix, role in (("receiver-", "receivers"), ("worker-", "workers")):
            if name.startswith(prefix):
                return role
        return "other"


def all_contenders(*, receivers: int, workers: int, filepath: str) -> dict[str, Contender]:
    contenders = [
        Dcmtk(),
        Pynetdicom(),
        Orthanc(),
        PacsIngest(receivers=receivers, workers=workers, filepath=filepath),
    ]
    return {contender.key: contender for contender in contenders}
