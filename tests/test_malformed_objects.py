"""Malformed objects, sent as real C-STOREs, are never lost, never stuck and never filed at a
path made of missing values (issue 8), with a pattern and without.

Each object is a Part 10 file with a valid file meta and a hostile data set, sent by pynetdicom
with its data set bytes as they are: random bytes, an empty data set, a length of 0x80000000,
no SOP Instance UID, a sequence nested 10,000 deep, and a seeded handful of mutations of a valid
object. Every acknowledged one must end exactly once, byte for byte, in the archive or in
failed/ with a JSON reason, within a minute.
"""

import json
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom.filereader import read_partial

from benchmarks.corpus import make_corpus
from pacs_ingest.shared import part10
from pacs_ingest.shared.safe_path import safe_value
from tests.conftest import Pipeline
from tests.header_bytes import CT_IMAGE_STORAGE, EXPLICIT, Encoder, file_meta
from tests.helpers import CorpusFile, archive_files, pynetdicom_send, wait_until, waiting_objects

PATTERN = "{PatientID}/{PatientName}/{StudyDate,date,yyyy}/{SOPInstanceUID}.dcm"
SOP_INSTANCE_UID = 0x00080018
FILED_WITHIN_S = 60
FUZZED = 30
UID = "1.2.826.0.1.3680043.8.498.77"  # of the hand-built data sets


@dataclass(frozen=True)
class Sent:
    name: str
    meta_uid: str  # the C-STORE's Affected SOP Instance UID: unique per object
    data_set: bytes


def _base_data_set(folder: Path) -> bytes:
    """The data set bytes of a valid 8 KB CT object with patient, study date and UIDs."""
    path = make_corpus(folder, 1)[0]
    data = path.read_bytes()
    with open(path, "rb") as fp:
        return data[part10.read_file_meta(fp).dataset_offset :]


def _hand_built() -> dict[str, bytes]:
    enc = Encoder()
    sop = enc.text(SOP_INSTANCE_UID, "UI", UID)
    patient = enc.text(0x00100010, "PN", "Doe^John") + enc.text(0x00100020, "LO", "P1")
    study_date = enc.text(0x00080020, "DA", "20040119")
    return {
        "random": random.Random(10).randbytes(10_240),
        "empty": b"",
        "lying length": enc.element(0x00080016, "UN", b"", length=0x80000000) + sop + patient,
        "no SOP Instance UID": study_date + patient,
        "nested 10,000 deep": sop + study_date + enc.nested(0x00081140, 10_000) + patient,
        "missing attributes": sop,  # legitimately absent: rendered as the reference does
    }


def _fuzzed(valid: bytes, rng: random.Random) -> list[bytes]:
    """Flipped bytes, lying lengths and truncations, mostly in the header where they matter."""
    header_end = min(len(valid), 1200)
    mutants = []
    for index in range(FUZZED):
        data = bytearray(valid)
        if index % 3 == 0:
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(header_end)] ^= 1 << rng.randrange(8)
        elif index % 3 == 1:
            at = rng.randrange(header_end - 4)
            data[at : at + 4] = struct.pack("<L", rng.choice([0xFFFFFFFF, 0x80000000, 9999]))
        else:
            del data[rng.randrange(header_end) :]
        mutants.append(bytes(data))
    return mutants


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[Sent]:
    valid = _base_data_set(tmp_path_factory.mktemp("base"))
    named = _hand_built()
    named.update({f"fuzzed {i}": data for i, data in enumerate(_fuzzed(valid, random.Random(8)))})
    named["valid"] = valid
    return [
        Sent(name, f"1.2.826.0.1.3680043.8.498.{index + 1000}", data_set)
        for index, (name, data_set) in enumerate(named.items())
    ]


def _send(objects: list[Sent], folder: Path, port: int) -> dict[str, int]:
    folder.mkdir()
    files = []
    for sent in objects:
        path = folder / f"{sent.meta_uid}.dcm"
        path.write_bytes(file_meta(EXPLICIT, sent.meta_uid) + sent.data_set)
        files.append(CorpusFile(path, CT_IMAGE_STORAGE, sent.meta_uid, "", EXPLICIT))
    statuses = pynetdicom_send(files, port, "INGEST")
    return {path.stem: status for path, status in statuses.items()}


def _stored(path: Path) -> tuple[str, bytes]:
    """(Affected SOP Instance UID from the file meta, data set bytes) of a stored file."""
    with open(path, "rb") as fp:
        meta = part10.read_file_meta(fp)
        return meta.media_storage_sop_instance_uid, fp.read()


def _data_set_sop_instance_uid(path: Path) -> str:
    """The SOP Instance UID as pydicom reads it, independently of our header reader."""
    with open(path, "rb") as fp:
        header = read_partial(fp, stop_when=lambda tag, vr, length: tag > SOP_INSTANCE_UID)
    return str(header.get("SOPInstanceUID", ""))


def _outcomes(pipeline: Pipeline) -> dict[str, tuple[str, Path]]:
    """Meta UID -> ("archive" or the failed/ reason, where); each stored file exactly once."""
    found: dict[str, tuple[str, Path]] = {}
    failed = pipeline.spool / "failed"
    places = [("archive", p) for p in archive_files(pipeline.archive)]
    places += [("failed", p) for p in sorted(failed.glob("*.dcm"))]
    for folder, path in places:
        uid, _ = _stored(path)
        assert uid not in found, f"{uid} stored twice: {found.get(uid)} and {path}"
        if folder == "archive":
            found[uid] = (folder, path)
        else:
            found[uid] = (json.loads(path.with_suffix(".json").read_text())["reason"], path)
    return found


@pytest.mark.parametrize("pattern", [PATTERN, None], ids=["pattern", "no pattern"])
def test_every_acknowledged_malformed_object_is_filed_or_failed_exactly_once(
    pipeline: Pipeline, objects: list[Sent], tmp_path: Path, pattern: str | None
) -> None:
    up = pipeline.up(*(["--filepath", pattern] if pattern else []))
    statuses = _send(objects, tmp_path / "sent", pipeline.port)
    assert statuses == {sent.meta_uid: 0 for sent in objects}, "every object is acknowledged"

    def settled() -> bool:
        return not waiting_objects(pipeline.spool)

    wait_until(settled, FILED_WITHIN_S, "every object to be filed or failed")
    outcomes = _outcomes(pipeline)
    assert sorted(outcomes) == sorted(sent.meta_uid for sent in objects), up.log()[-3000:]
    by_name = {sent.name: outcomes[sent.meta_uid] for sent in objects}
    for sent in objects:
        where, path = outcomes[sent.meta_uid]
        assert _stored(path)[1] == sent.data_set, f"{sent.name}: bytes changed"
        if where == "archive":
            _assert_named_by_its_sop_instance_uid(path, sent, pattern)
    assert by_name["valid"][0] == "archive"
    assert by_name["empty"][0] == "no SOP Instance UID"
    assert by_name["no SOP Instance UID"][0] == "no SOP Instance UID"
    assert by_name["random"][0] in ("unreadable", "no SOP Instance UID")
    reason, error = _reason_error(by_name["lying length"])
    assert reason == "unreadable"
    assert re.fullmatch(r"element \(0008,0016\) declares 2147483648 bytes, \d+ remain", error)
    if pattern:  # absent PatientID and PatientName render nothing, an absent StudyDate null
        missing = by_name["missing attributes"]
        assert missing[0] == "archive"
        assert missing[1].relative_to(pipeline.archive).as_posix() == f"null/{UID}.dcm"
    if pattern:  # its path needs PatientName, behind the nesting
        assert _reason_error(by_name["nested 10,000 deep"])[1].startswith(
            "sequences nested deeper than 64"
        )
    else:  # reading stops at the SOP Instance UID, before the nesting
        assert by_name["nested 10,000 deep"][0] == "archive"


def _reason_error(outcome: tuple[str, Path]) -> tuple[str, str]:
    reason = json.loads(outcome[1].with_suffix(".json").read_text())
    return reason["reason"], reason["error"]


def _assert_named_by_its_sop_instance_uid(path: Path, sent: Sent, pattern: str | None) -> None:
    """Filed at a path with a name, never one made of missing values: with the pattern the name
    is the data set's SOP Instance UID (plus ~digest when kept beside another object), without
    it the C-STORE's."""
    uid = _data_set_sop_instance_uid(path)
    assert uid, f"{sent.name} was filed without a SOP Instance UID, at {path}"
    if pattern is None:
        assert path.name == sent.meta_uid
        return
    stem = path.name.removesuffix(".dcm").split("~")[0]
    assert stem == safe_value(uid), f"{sent.name} filed at {path}"
