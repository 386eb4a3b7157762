"""A part file holds exactly the file meta and the data set bytes it was given, however they were
gathered into writes, and its ready/ entry reports its true size; spool names stay unique
without a random draw per object, in a forked child too."""

import os
import re
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
