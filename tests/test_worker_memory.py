"""A worker's memory does not grow with what an object declares: a 1 GB object, and one whose
deflated data set inflates to 512 MB before the attributes its path needs, are filed by a
`work --burst` process whose peak resident size stays under 200 MB."""

import subprocess
import sys
import zlib
from pathlib import Path

from tests.conftest import Pipeline
from tests.header_bytes import DEFLATED, EXPLICIT, Encoder, file_meta
from tests.helpers import ROOT, archive_files

PATTERN = "{PatientID}/{SOPInstanceUID}.dcm"
MAX_RSS_BYTES = 200 << 20
PIXEL_DATA = 0x7FE00010
PRIVATE_BULK = 0x00091010
# Runs a command and prints the peak resident size (KiB) of it and every descendant it waited for.
_PEAK_RSS = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(code)"
)


def _identity(enc: Encoder, uid: str, patient_id: str) -> bytes:
    return enc.text(0x00080018, "UI", uid) + enc.text(0x00100020, "LO", patient_id)


def _gigabyte_object(path: Path) -> Path:
    """1 GB of Pixel Data after the header, sparse on disk: nothing needs to write it."""
    enc = Encoder()
    size = 1 << 30
    head = file_meta(EXPLICIT, "1.2.3.1") + _identity(enc, "1.2.3.1", "BIG")
    with open(path, "wb") as fp:
        fp.write(head + enc.element(PIXEL_DATA, "OW", b"", length=size))
        fp.truncate(len(head) + 12 + size)
    return path


def _inflating_object(path: Path) -> Path:
    """A deflated data set with 512 MB of zeros before PatientID (5 MB on disk)."""
    enc = Encoder()
    size = 512 << 20
    deflater = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    uid = enc.text(0x00080018, "UI", "1.2.3.2")
    with open(path, "wb") as fp:
        fp.write(file_meta(DEFLATED, "1.2.3.2"))
        fp.write(deflater.compress(uid + enc.element(PRIVATE_BULK, "OB", b"", length=size)))
        zeros = bytes(16 << 20)
        for _ in range(size // len(zeros)):
            fp.write(deflater.compress(zeros))
        fp.write(deflater.compress(enc.text(0x00100020, "LO", "DEFLATED")) + deflater.flush())
    return path


def _pacs_ingest(pipeline: Pipeline, command: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "pacs_ingest", command, "--redis-url", pipeline.redis_url, *args]


def test_a_gigabyte_object_is_filed_by_a_worker_under_200_mb(pipeline: Pipeline) -> None:
    folder = pipeline.tmp_path / "import"
    folder.mkdir()
    objects = [_gigabyte_object(folder / "big.dcm"), _inflating_object(folder / "deflated.dcm")]
    storage = ("--spool-dir", str(pipeline.spool), "--directory", str(pipeline.archive))
    imported = subprocess.run(
        _pacs_ingest(pipeline, "reprocess", *storage, "--filepath", PATTERN, "--move", "--import")
        + [str(path) for path in objects],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            _PEAK_RSS,
            *_pacs_ingest(pipeline, "work", "--burst", "--processes", "1"),
            *("--allow-directory", str(pipeline.tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    filed = {p.relative_to(pipeline.archive).as_posix(): p for p in archive_files(pipeline.archive)}
    assert sorted(filed) == ["BIG/1.2.3.1.dcm", "DEFLATED/1.2.3.2.dcm"], worker.stderr[-3000:]
    assert filed["BIG/1.2.3.1.dcm"].stat().st_size > 1 << 30
    peak = int(worker.stdout.split()[-1]) * 1024
    assert peak < MAX_RSS_BYTES, f"peak resident size {peak >> 20} MB"
