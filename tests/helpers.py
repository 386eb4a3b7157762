"""Real peers and a real pipeline for the tests: processes, DICOM senders, the pydicom corpus."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import dcmread
from pynetdicom import AE, _config
from pynetdicom.presentation import build_context

# DICOMDIR files describe media; they are not objects a modality sends.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
CORPUS_DIR = Path(pydicom.__file__).parent / "data" / "test_files"
ROOT = Path(__file__).resolve().parent.parent


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def waiting_objects(spool: Path) -> list[Path]:
    """The objects waiting in a spool's ready/ (its lanes and buckets); a bucket that recovery
    removes meanwhile is skipped, as os.walk does."""
    return sorted(
        Path(folder, name)
        for folder, _, names in os.walk(spool / "ready")
        for name in names
        if name.endswith(".dcm")
    )


def all_filed(archive: Path, spool: Path, count: int) -> bool:
    """`count` files in the archive and nothing waiting in the spool."""
    return len(archive_files(archive)) == count and not waiting_objects(spool)


def archive_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


@dataclass
class Command:
    """A `pacs-ingest` command running as a child process, stopped with SIGTERM at the end."""

    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> "Command":
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child until it exits
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pacs_ingest", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL the whole process group: the command and every child it started."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def traced(pids: Iterable[int]) -> bool:
    """Whether a tracer (strace -p) has attached to every thread of each process of `pids`."""
    for pid in pids:
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            tracer = next(
                line for line in status.read_text().splitlines() if line.startswith("TracerPid:")
            )
            if tracer.split()[1] == "0":
                return False
    return True


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    def accepting() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    wait_until(accepting, timeout, f"port {port}")


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str  # from the file meta: what senders use as Affected SOP Instance UID
    dataset_sop_instance_uid: str
    transfer_syntax_uid: str


def corpus_file(path: Path) -> CorpusFile:
    ds = dcmread(path, stop_before_pixels=True)
    meta = ds.file_meta
    return CorpusFile(
        path,
        str(meta.get("MediaStorageSOPClassUID", "")),
        str(meta.get("MediaStorageSOPInstanceUID", "")),
        str(ds.get("SOPInstanceUID", "")),
        str(meta.get("TransferSyntaxUID", "")),
    )


def corpus() -> list[CorpusFile]:
    """Every file of pydicom's test corpus that is a valid Part 10 file with a complete meta."""
    found = []
    for path in sorted(p for p in CORPUS_DIR.rglob("*") if p.is_file()):
        try:
            item = corpus_file(path)
        except Exception:
            continue
        uids = (item.sop_class_uid, item.sop_instance_uid, item.transfer_syntax_uid)
        if all(uids) and item.sop_class_uid != MEDIA_STORAGE_DIRECTORY:
            found.append(item)
    return found


def rounds(files: Iterable[CorpusFile]) -> list[list[CorpusFile]]:
    """Split files so that no SOP Instance UID (meta or data set) occurs twice in a round.

    Objects are filed under their UID, and the corpus holds one image in several encodings.
    """
    result: list[list[CorpusFile]] = []
    used: list[set[str]] = []
    for item in files:
        keys = {item.sop_instance_uid, item.dataset_sop_instance_uid} - {""}
        for index, taken in enumerate(used):
            if not keys & taken:
                result[index].append(item)
                taken.update(keys)
                break
        else:
            result.append([item])
            used.append(set(keys))
    return result


@contextlib.contextmanager
def chunked_send() -> Iterator[None]:
    """pynetdicom sends a file's data set bytes as they are, not decoded and encoded again."""
    before = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        yield
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = before


def pynetdicom_send(files: Sequence[CorpusFile], port: int, ae_title: str) -> dict[Path, int]:
    """Send each file's data set bytes as they are (chunked send); status per file."""
    with chunked_send():
        return _send_each(files, port, ae_title)


def _send_each(files: Sequence[CorpusFile], port: int, ae_title: str) -> dict[Path, int]:
    statuses: dict[Path, int] = {}
    by_context: dict[tuple[str, str], list[CorpusFile]] = defaultdict(list)
    for item in files:
        by_context[(item.sop_class_uid, item.transfer_syntax_uid)].append(item)
    contexts = list(by_context)
    for start in range(0, len(contexts), 100):
        chunk = contexts[start : start + 100]
        ae = AE(ae_title="PYNETDICOM")
        ae.requested_contexts = [build_context(sop, [ts]) for sop, ts in chunk]
        assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
        assert assoc.is_established, "association rejected"
        try:
            for key in chunk:
                for item in by_context[key]:
                    rsp = assoc.send_c_store(item.path)
                    statuses[item.path] = int(rsp.Status) if "Status" in rsp else -1
        finally:
            assoc.release()
    return statuses


def storescu_config(files: Sequence[CorpusFile], path: Path) -> Path:
    """A DCMTK storescu -xf file proposing each file's own SOP class and transfer syntax."""
    pairs = sorted({(f.sop_class_uid, f.transfer_syntax_uid) for f in files})
    assert len(pairs) <= 128, "storescu proposes at most 128 presentation contexts"
    lines = ["[[TransferSyntaxes]]"]
    syntaxes = sorted({ts for _, ts in pairs})
    for index, ts in enumerate(syntaxes):
        lines += [f"[TS{index}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Corpus]"]
    for index, (sop, ts) in enumerate(pairs, start=1):
        lines.append(f"PresentationContext{index} = {sop}\\TS{syntaxes.index(ts)}")
    lines += ["[[Profiles]]", "[Corpus]", "PresentationContexts = Corpus"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class StorescuRun:
    """What DCMTK storescu -v reported, per corpus file."""

    succeeded: list[CorpusFile]
    unreadable: list[CorpusFile]  # storescu could not parse the file, so never sent it
    other: list[CorpusFile]  # sent, but not answered with Success
    output: str


def storescu_send(
    files: Sequence[CorpusFile], port: int, ae_title: str, workdir: Path, extra: Sequence[str] = ()
) -> StorescuRun:
    """DCMTK storescu +sd +r -nh over a folder of links to `files`, with their own syntaxes."""
    folder = workdir / f"send-{time.monotonic_ns()}"
    folder.mkdir()
    by_link: dict[str, CorpusFile] = {}
    for index, item in enumerate(files):
        link = folder / f"{index:04d}.dcm"
        link.symlink_to(item.path)
        by_link[str(link)] = item
    config = storescu_config(files, workdir / f"{folder.name}.cfg")
    result = subprocess.run(
        [
            "storescu",
            "-v",
            "-aec",
            ae_title,
            "+sd",
            "+r",
            "-nh",
            "-xf",
            str(config),
            "Corpus",
            *extra,
            "127.0.0.1",
            str(port),
            str(folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    output = result.stdout + result.stderr
    succeeded, unreadable = [], []
    current = None
    for line in output.splitlines():
        if line.startswith("I: Sending file: "):
            current = by_link[line.removeprefix("I: Sending file: ")]
        elif line.startswith("I: Received Store Response (Success)") and current is not None:
            succeeded.append(current)
            current = None
        elif line.startswith(("E: No SOP Class or Instance UID in file: ", "E: Bad DICOM file: ")):
            link = line.split("file: ", 1)[1].split(":", 1)[0]
            unreadable.append(by_link[link])
    other = [f for f in files if f not in succeeded and f not in unreadable]
    return StorescuRun(succeeded, unreadable, other, output)


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at `path`, to fill up on purpose."""
    if os.geteuid() != 0:
        raise AssertionError("the disk-full tests mount a tmpfs, which needs root")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def resize_tmpfs(path: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def log_entries(log_text: str) -> Iterator[dict]:
    """The JSON objects of a log, in order; lines that are not one are passed over."""
    for line in log_text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def started_processes(log_text: str) -> list[tuple[str, int]]:
    """(name, pid) of every child a `pacs-ingest` command logged as started, in order."""
    return [
        (entry["process"], entry["pid"])
        for entry in log_entries(log_text)
        if entry.get("event") == "process.started"
    ]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, FileNotFoundError):
        return False


class Sender(threading.Thread):
    """DCMTK storescu over `files`, started again for whatever was not acknowledged."""

    def __init__(self, files: list[Path], port: int, deadline: float) -> None:
        super().__init__(daemon=True)
        self.files = files
        self.port = port
        self.deadline = deadline
        self.acknowledged: set[Path] = set()
        self.attempts = 0

    def run(self) -> None:
        while time.monotonic() < self.deadline:
            remaining = [f for f in self.files if f not in self.acknowledged]
            if not remaining:
                return
            self.attempts += 1
            result = subprocess.run(
                [
                    "storescu",
                    "-v",
                    "-aec",
                    "INGEST",
                    "127.0.0.1",
                    str(self.port),
                    *map(str, remaining),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, "TCP_NODELAY": "1"},
            )
            current = None
            for line in (result.stdout + result.stderr).splitlines():
                if line.startswith("I: Sending file: "):
                    current = Path(line.removeprefix("I: Sending file: "))
                elif line.startswith("I: Received Store Response (Success)") and current:
                    self.acknowledged.add(current)
                    current = None
            if result.returncode != 0:
                time.sleep(0.5)  # the receiver it talked to died: let it come back


def store_all(paths: Sequence[Path], port: int) -> None:
    """DCMTK storescu sends `paths` to Called AE INGEST on `port`; every one must succeed."""
    result = subprocess.run(
        ["storescu", "-aec", "INGEST", "127.0.0.1", str(port), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TCP_NODELAY": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
