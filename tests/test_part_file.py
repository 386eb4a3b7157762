"""A part file holds exactly the file meta and the data set bytes it was given, however they were
gathered into writes, and its ready/ entry reports its true size; every byte written starts on
its way to the disk before the fsync; spool names stay unique without a random draw per object,
in a forked child too."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pacs_ingest.receiver.store import Origin, PartFile
from pacs_ingest.shared import part10
from pacs_ingest.shared.spool import Spool, new_name

_UIDS = {
    "sop_class_uid": "1.2.840.10008.5.1.4.1.1.7",
    "sop_instance_uid": "1.2.3.4.5",
    "transfer_syntax_uid": "1.2.840.10008.1.2.1",
}
_ORIGIN = Origin("1.2.3", "TEST_1", "SENDER")
_NAME = re.compile(r"[0-9a-f]{32}")  # what workers.drain accepts in a ref


def _header() -> bytes:
    return part10.encode_header(
        **_UIDS,
        implementation_class_uid=_ORIGIN.implementation_class_uid,
        implementation_version_name=_ORIGIN.implementation_version_name,
        source_ae_title=_ORIGIN.calling_ae_title,
    )


@pytest.mark.parametrize(
    ("size", "fragment"),
    [(0, 1), (8192, 8192), (300_000, 16372), (40_000, 7)],  # empty; one PDV; many; tiny PDVs
)
def test_the_ready_file_is_the_file_meta_then_every_byte_received(
    tmp_path: Path, size: int, fragment: int
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    spool.open_lane("lane", b"{}")
    data = os.urandom(size)
    part = PartFile(spool, **_UIDS, origin=_ORIGIN)
    chunk = memoryview(data)
    for start in range(0, size, fragment):
        part.write(chunk[start : start + fragment])
    part.finish()
    spooled = part.make_durable(spool, "lane", now=time.time())
    spool.sync_ready([spooled.ref])
    written = spool.ready_path(spooled.ref).read_bytes()
    assert written == _header() + data
    assert spooled.size == len(written)


_WRITE_AND_FSYNC = """
import os, sys, time
from pacs_ingest.receiver.store import Origin, PartFile
from pacs_ingest.shared.spool import Spool
spool = Spool(sys.argv[1])
spool.create()
spool.open_lane("lane", b"{}")
part = PartFile(spool, sop_class_uid="1.2.840.10008.5.1.4.1.1.7", sop_instance_uid="1.2.3",
                transfer_syntax_uid="1.2.840.10008.1.2.1", origin=Origin("1.2.3", "T", "S"))
data = memoryview(os.urandom(int(sys.argv[2])))
for start in range(0, len(data), 16372):
    part.write(data[start : start + 16372])
part.finish()
spooled = part.make_durable(spool, "lane", now=time.time())
print(spooled.size)
"""


@pytest.mark.parametrize("size", [8192, 300_000])  # one write; several
def test_writeback_of_every_byte_starts_before_the_fsync(tmp_path: Path, size: int) -> None:
    trace = tmp_path / "trace"
    done = subprocess.run(
        [
            *("strace", "-f", "-y", "-qq", "-e", "trace=sync_file_range,fsync", "-o", str(trace)),
            *(sys.executable, "-c", _WRITE_AND_FSYNC, str(tmp_path / "spool"), str(size)),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    file_size = int(done.stdout)
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if ".part>" in line]
    started = [
        re.fullmatch(r"sync_file_range\(\d+<\S+>, (\d+), (\d+), SYNC_FILE_RANGE_WRITE\) = 0", call)
        for call in calls[:-1]
    ]
    assert calls[-1].startswith("fsync(") and all(started), calls
    ranges = [(int(match[1]), int(match[2])) for match in started if match]
    ends = [offset + length for offset, length in ranges]
    # Back to back from the first byte to the last, file meta included.
    assert [offset for offset, _ in ranges] == [0, *ends[:-1]]
    assert ends[-1] == file_size
    assert (len(ranges) > 1) == (size > 128 * 1024)


def test_spool_names_are_unique_and_a_forked_child_draws_its_own() -> None:
    names = {new_name() for _ in range(10_000)}
    assert len(names) == 10_000
    assert all(_NAME.fullmatch(name) for name in names)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.write(write_end, new_name().encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    assert _NAME.fullmatch(from_child)
    assert from_child[:20] not in {name[:20] for name in names}
