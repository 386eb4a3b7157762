"""Header reading: as far as filing needs and no further, every declared length checked, no
recursion and bounded memory whatever an object declares, and for readable objects exactly what
pydicom reads. Objects are hand-built bytes (tests.header_bytes), so a test says what it sends."""

import contextlib
import io
import random
import struct
import sys
import time
import tracemalloc
import warnings
import zlib
from datetime import datetime
from pathlib import Path

import pydicom
import pytest
from pydicom import dcmread

from pacs_ingest.shared.pattern import BULK_VRS, Pattern, RenderError, resolved_vr
from pacs_ingest.workers import element_scan
from pacs_ingest.workers.element_scan import BULK_READ_LIMIT, MAX_DEPTH, MAX_VALUE_BYTES
from pacs_ingest.workers.header import (
    HeaderError,
    NoSOPInstanceUID,
    read_filing_header,
    read_header,
)
from tests.header_bytes import SYNTAXES, UNDEFINED, Encoder, file_meta

NOW = datetime(2024, 2, 29, 13, 5, 9)
SPECIFIC_CHARACTER_SET = 0x00080005
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
REFERENCED_IMAGE_SEQUENCE = 0x00081140
REFERENCED_SOP_INSTANCE_UID = 0x00081155
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ROWS = 0x00280010
PRIVATE_BULK = 0x00091010
ISSUE_PATTERN = "{PatientID}/{PatientName}/{StudyDate,date,yyyy}/{SOPInstanceUID}.dcm"


def read(data: bytes, source: str = "{PatientID}"):
    return read_filing_header(io.BytesIO(data), Pattern.parse(source).tag_paths)


def render(data: bytes, source: str) -> str:
    pattern = Pattern.parse(source)
    return pattern.render(read(data, source), now=NOW, rng=random.Random(0))


def refused(data: bytes, source: str = "{PatientID}") -> str:
    """The HeaderError message reading `data` for `source` gives."""
    with pytest.raises(HeaderError) as raised:
        read(data, source)
    return str(raised.value)


def sop(enc: Encoder, value: str = "1.2.3.4.5") -> bytes:
    return enc.text(SOP_INSTANCE_UID, "UI", value)


def patient(enc: Encoder) -> bytes:
    return enc.text(PATIENT_NAME, "PN", "Doe^John") + enc.text(PATIENT_ID, "LO", "P1")


# -- what is read, in every transfer syntax ------------------------------------------------


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("syntax", list(SYNTAXES))
def test_every_transfer_syntax_reads_the_same_values(syntax: str, undefined: bool) -> None:
    enc = Encoder(syntax)
    reference = enc.item(enc.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8"), undefined=undefined)
    data_set = (
        enc.text(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 100")
        + sop(enc)
        + enc.sequence(REFERENCED_IMAGE_SEQUENCE, [reference, reference], undefined=undefined)
        + enc.element(PATIENT_NAME, "PN", "Jérôme^Ü".encode("latin-1"))
        + enc.text(PATIENT_ID, "LO", "P1")
        + enc.element(ROWS, "US", struct.pack(enc.order + "H", 512))
    )
    source = "{PatientName}/{PatientID}/{Rows}/{00081140.00081155}/{SOPInstanceUID}"
    assert render(enc.part10(data_set), source) == "Jérôme^Ü/P1/512/9.8/1.2.3.4.5"


def test_reading_stops_before_what_the_path_does_not_need() -> None:
    enc = Encoder()
    lie = enc.element(0x00200010, "UN", b"", length=0x80000000)  # after what is needed
    data = enc.part10(sop(enc) + patient(enc) + lie)
    assert render(data, "{PatientID}") == "P1"
    assert "(0020,0010) declares 2147483648 bytes" in refused(data, "{StudyID}")


def test_only_the_needed_elements_are_kept() -> None:
    enc = Encoder()
    header = read(enc.part10(enc.text(SOP_CLASS_UID, "UI", "1.2") + sop(enc) + patient(enc)))
    assert sorted(header.keys()) == [SOP_INSTANCE_UID, PATIENT_ID]


# -- every length checked -------------------------------------------------------------------


@pytest.mark.parametrize("syntax", list(SYNTAXES))
def test_a_length_beyond_the_file_names_the_element_and_what_remains(syntax: str) -> None:
    enc = Encoder(syntax)
    after = sop(enc)
    data = enc.part10(enc.element(SOP_CLASS_UID, "UN", b"", length=0x80000000) + after)
    assert refused(data) == f"element (0008,0016) declares 2147483648 bytes, {len(after)} remain"


@pytest.mark.parametrize("syntax", list(SYNTAXES))
def test_a_value_cut_short_is_refused_with_what_remains(syntax: str) -> None:
    enc = Encoder(syntax)
    data = enc.part10(sop(enc) + enc.text(PATIENT_ID, "LO", "PATIENT-0001")[:-5])
    assert refused(data) == "element (0010,0020) declares 12 bytes, 7 remain"


def test_the_first_element_of_the_data_set_decides_between_implicit_and_explicit_vr() -> None:
    enc = Encoder()  # explicit VR, behind a file meta that says implicit
    data = file_meta(SYNTAXES["implicit"]) + sop(enc) + patient(enc)
    assert render(data, "{PatientName}/{PatientID}") == "Doe^John/P1"


def test_items_may_be_implicit_vr_in_an_explicit_data_set() -> None:
    """Some writers encode items in implicit VR (pydicom issues 1035, 1067), and an undefined
    UN is implicit VR by PS3.5 6.2.2. The item's first element decides for the whole item, as
    pydicom reads it: here a later length (0x4955) reads as the letters "UI"."""
    enc, implicit = Encoder(), Encoder("implicit")
    comments = implicit.element(0x00204000, "LT", b"x" * 0x4955)
    item = implicit.item(implicit.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8") + comments)
    un = enc.element(0x00081115, "UN", b"", length=UNDEFINED) + implicit.item(
        implicit.text(0x00081150, "UI", "7.6"), undefined=True
    )
    data_set = sop(enc) + enc.sequence(REFERENCED_IMAGE_SEQUENCE, [item]) + un
    data_set += struct.pack("<HHL", 0xFFFE, 0xE0DD, 0) + patient(enc)
    source = "{00081140.00081155}/{00081140.00204000,slice,-2}/{00081115.00081150}/{PatientID}"
    assert render(enc.part10(data_set), source) == "9.8/xx/7.6/P1"


def test_a_length_beyond_its_item_is_refused() -> None:
    enc = Encoder()
    element = enc.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8.7.6")
    short_item = struct.pack("<HHL", 0xFFFE, 0xE000, 10) + element
    data = enc.part10(sop(enc) + enc.sequence(REFERENCED_IMAGE_SEQUENCE, [short_item]))
    message = refused(data, "{00081140.00081155}")
    assert message == "element (0008,1155) in item 1 of (0008,1140) declares 8 bytes, 2 remain"


def test_an_item_longer_than_its_sequence_is_refused() -> None:
    enc = Encoder()
    item = enc.item(enc.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8"))
    sequence = enc.element(REFERENCED_IMAGE_SEQUENCE, "SQ", item[:-4], length=len(item) - 4)
    data = enc.part10(sop(enc) + sequence + patient(enc))
    assert (
        refused(data, "{00081140.00081155}") == "item 1 of (0008,1140) declares 12 bytes, 8 remain"
    )


_ENC = Encoder()
_PATIENT = patient(_ENC)


@pytest.mark.parametrize(
    ("data_set", "message"),
    [
        (b"\x08\x00\x18\x00UI", "the data set ends inside an element header"),
        (b"\x08\x00\x18\x00UI\x08\x00", "element (0008,0018) declares 8 bytes, 0 remain"),
        (
            _ENC.element(REFERENCED_IMAGE_SEQUENCE, "SQ", b"", length=UNDEFINED) + _PATIENT,
            "sequence (0008,1140) holds (0010,0010) where an item belongs",
        ),
        (
            _ENC.nested(REFERENCED_IMAGE_SEQUENCE, 1)[:-16],
            "the data set ends inside an element header in item 1 of (0008,1140)",
        ),
        (
            _ENC.nested(REFERENCED_IMAGE_SEQUENCE, 1, struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)),
            "(FFFE,E0DD) stands where an element belongs in item 1 of (0008,1140)",
        ),
        (
            _ENC.element(REFERENCED_IMAGE_SEQUENCE, "SQ", b"", length=UNDEFINED) + _ENC.item(b""),
            "the data set ends inside sequence (0008,1140)",
        ),
    ],
    ids=["cut header", "cut value", "no item", "unclosed item", "misplaced delimiter", "cut"],
)
def test_a_broken_structure_is_refused_with_what_is_wrong(data_set: bytes, message: str) -> None:
    assert refused(_ENC.part10(data_set)) == message


def test_truncation_anywhere_before_the_sop_instance_uid_never_yields_a_header() -> None:
    enc = Encoder()
    data_set = enc.text(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 100") + sop(enc)
    for cut in range(len(data_set)):
        with pytest.raises((HeaderError, NoSOPInstanceUID)):
            read(enc.part10(data_set[:cut]), "")


def test_a_broken_deflate_stream_is_refused() -> None:
    data = file_meta(SYNTAXES["deflated"]) + b"\x07" * 64
    assert refused(data).startswith("the deflated data set cannot be inflated: ")


def test_a_file_that_is_not_part10_is_refused() -> None:
    assert refused(b"\x00" * 200).startswith("not a DICOM Part 10 file")


# -- limits ---------------------------------------------------------------------------------


def test_sequences_nest_up_to_the_limit_and_no_deeper() -> None:
    enc = Encoder()
    deepest = enc.nested(REFERENCED_IMAGE_SEQUENCE, MAX_DEPTH, patient(enc))
    source = "{00081140.00081140.00100020}/{PatientID}"
    assert render(enc.part10(sop(enc) + deepest + patient(enc)), source) == "/P1"
    deeper = enc.nested(REFERENCED_IMAGE_SEQUENCE, MAX_DEPTH + 1)
    message = refused(enc.part10(sop(enc) + deeper + patient(enc)))
    assert message == "sequences nested deeper than 64 (at (0008,1140))"


def test_ten_thousand_nested_sequences_are_refused_fast_without_recursion() -> None:
    enc = Encoder()
    data = enc.part10(sop(enc) + enc.nested(REFERENCED_IMAGE_SEQUENCE, 10_000) + patient(enc))
    limit = sys.getrecursionlimit()
    started = time.monotonic()
    try:
        sys.setrecursionlimit(len(_stack_frames()) + 60)  # no room to recurse per level
        message = refused(data, ISSUE_PATTERN)
    finally:
        sys.setrecursionlimit(limit)
    assert message.startswith("sequences nested deeper than 64")
    assert time.monotonic() - started < 1


def _stack_frames() -> list[object]:
    frame, frames = sys._getframe(), []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    return frames


def test_the_number_of_elements_read_is_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(element_scan, "MAX_ELEMENTS", 1000)
    enc = Encoder()

    def with_items(count: int) -> bytes:
        items = [enc.item(b"")] * count
        return enc.part10(sop(enc) + enc.sequence(0x00081115, items, undefined=True) + patient(enc))

    assert render(with_items(900), "{PatientID}") == "P1"
    message = refused(with_items(2000))
    assert message == "more than 1000 elements and items before (0010,0020)"


@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_the_number_of_plain_elements_read_is_limited(
    syntax: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(element_scan, "MAX_ELEMENTS", 1000)
    enc = Encoder(syntax)

    def with_elements(count: int) -> bytes:
        # Private elements of group 0009, in order, between the SOP and the patient's module.
        plain = b"".join(enc.text(0x00091000 + i, "LO", "x") for i in range(count))
        return enc.part10(sop(enc) + plain + patient(enc))

    assert render(with_elements(900), "{PatientID}") == "P1"
    message = refused(with_elements(2000))
    assert message == "more than 1000 elements and items before (0010,0020)"


def test_a_value_the_path_reads_is_limited_to_a_mebibyte() -> None:
    enc = Encoder("implicit")  # implicit VR: any element may declare 32-bit lengths
    huge = enc.element(PATIENT_ID, "LO", b"P" * (MAX_VALUE_BYTES + 2))
    message = refused(enc.part10(sop(enc) + huge))
    assert message == (
        "element (0010,0020) holds 1048578 bytes, more than the 1048576 a path may be rendered from"
    )
    fits = enc.element(PATIENT_ID, "LO", b"P" * MAX_VALUE_BYTES)
    assert len(render(enc.part10(sop(enc) + fits), "{PatientID,slice,-3}")) == 3


def test_the_first_item_of_a_sequence_the_path_reads_is_limited_to_a_mebibyte() -> None:
    enc = Encoder()
    bulky = enc.element(0x00091011, "OB", bytes(MAX_VALUE_BYTES))
    item = enc.item(enc.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8") + bulky)
    data = enc.part10(sop(enc) + enc.sequence(REFERENCED_IMAGE_SEQUENCE, [item]) + patient(enc))
    assert render(data, "{PatientID}") == "P1"  # not on the path: skipped, not read
    message = refused(data, "{00081140.00081155}")
    assert message.startswith("the first item of (0008,1140) holds more than 1048576 bytes")


def test_large_binary_values_count_as_missing_and_small_ones_are_read() -> None:
    enc = Encoder()
    data_set = (
        sop(enc)
        + enc.element(PRIVATE_BULK, "OB", b"\x07" * (BULK_READ_LIMIT + 1))
        + enc.element(0x00091011, "OB", b"\x07" * BULK_READ_LIMIT)
    )
    assert render(enc.part10(data_set), "{00091010}|{00091010,hash}|{00091011}") == "|null|7"


def _sparse_object(path: Path, size: int, enc: Encoder) -> Path:
    """A Part 10 file with a `size`-byte private OB value of zeros between SOP Instance UID and
    PatientID, sparse on disk, so the test need not write it."""
    head = enc.part10(sop(enc)) + enc.element(PRIVATE_BULK, "OB", b"", length=size)
    with open(path, "wb") as fp:
        fp.write(head)
        fp.seek(size, io.SEEK_CUR)
        fp.write(patient(enc))
    return path


def _peak_bytes_reading(path: Path, source: str) -> tuple[str, int]:
    tracemalloc.start()
    try:
        with open(path, "rb") as fp:
            pattern = Pattern.parse(source)
            header = read_filing_header(fp, pattern.tag_paths)
            rendered = pattern.render(header, now=NOW, rng=random.Random(0))
        return rendered, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gigabyte_value_before_the_needed_tags_is_skipped_not_read(tmp_path: Path) -> None:
    path = _sparse_object(tmp_path / "big.dcm", 1 << 30, Encoder())
    rendered, peak = _peak_bytes_reading(path, "{00091010}/{PatientID}")
    assert rendered == "/P1"
    assert peak < 4 << 20


def test_a_deflated_data_set_is_inflated_as_it_is_read_in_bounded_memory(tmp_path: Path) -> None:
    enc = Encoder("explicit")
    size = 256 << 20
    deflater = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [file_meta(SYNTAXES["deflated"])]
    parts.append(deflater.compress(sop(enc) + enc.element(PRIVATE_BULK, "OB", b"", length=size)))
    zeros = bytes(16 << 20)
    parts += [deflater.compress(zeros) for _ in range(size // len(zeros))]
    parts.append(deflater.compress(patient(enc)) + deflater.flush())
    path = tmp_path / "deflated.dcm"
    path.write_bytes(b"".join(parts))
    del parts, zeros
    rendered, peak = _peak_bytes_reading(path, "{PatientID}")
    assert rendered == "P1"
    assert peak < 8 << 20  # pydicom's reader inflates the whole data set into memory


# -- what is missing ------------------------------------------------------------------------


def test_an_object_without_sop_instance_uid_says_where_reading_stopped() -> None:
    enc = Encoder()
    with pytest.raises(NoSOPInstanceUID, match=r"reading stopped at \(0010,0010\)$"):
        read(enc.part10(patient(enc)), "")
    with pytest.raises(NoSOPInstanceUID, match="ends without a SOP Instance UID"):
        read(enc.part10(b""), "")
    with pytest.raises(
        NoSOPInstanceUID, match=r"SOP Instance UID \(0008,0018\) of the data set is empty"
    ):
        read(enc.part10(sop(enc, "  ")), "")


def test_read_header_alone_does_not_require_a_sop_instance_uid() -> None:
    enc = Encoder()
    header = read_header(io.BytesIO(enc.part10(patient(enc))), ((PATIENT_ID,),))
    assert header.get_item(PATIENT_ID).value == b"P1"


# -- hostile input never escapes as another error -------------------------------------------


def _mutations(valid: bytes, count: int, rng: random.Random) -> list[bytes]:
    """Flipped bytes, lying lengths and truncations of `valid` (its header kept)."""
    start = len(file_meta(SYNTAXES["explicit"]))
    mutated = []
    for index in range(count):
        data = bytearray(valid)
        kind = index % 3
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(start, len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            at = rng.randrange(start, len(data) - 4)
            data[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\x00\x00\x00\x80"])
        else:
            del data[rng.randrange(start, len(data)) :]
        mutated.append(bytes(data))
    return mutated


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "big"])
def test_random_and_mutated_objects_give_a_header_or_a_named_error_fast(syntax: str) -> None:
    enc = Encoder(syntax)
    reference = enc.item(enc.text(REFERENCED_SOP_INSTANCE_UID, "UI", "9.8"), undefined=True)
    valid = enc.part10(
        enc.text(SPECIFIC_CHARACTER_SET, "CS", "ISO_IR 100")
        + enc.text(0x00080020, "DA", "20040101")
        + sop(enc)
        + enc.sequence(REFERENCED_IMAGE_SEQUENCE, [reference], undefined=True)
        + patient(enc)
    )
    rng = random.Random(8)
    noise = [
        file_meta(SYNTAXES[syntax]) + rng.randbytes(rng.randrange(1, 10_240)) for _ in range(50)
    ]
    for data in noise + _mutations(valid, 300, rng):
        started = time.monotonic()
        with contextlib.suppress(HeaderError, NoSOPInstanceUID, RenderError):
            render(data, ISSUE_PATTERN + "/{00081140.00081155}")
        assert time.monotonic() - started < 1


# -- for readable objects, what pydicom reads -----------------------------------------------

CORPUS = sorted(
    p for p in (Path(pydicom.__file__).parent / "data").rglob("*.dcm") if p.stat().st_size < 4 << 20
)


def _tag_paths(dataset: pydicom.Dataset) -> list[tuple[int, ...]]:
    """Every top-level tag, and one level into the first item of each sequence."""
    paths: list[tuple[int, ...]] = []
    for element in dataset:
        paths.append((int(element.tag),))
        if element.VR == "SQ" and element.value:
            paths += [(int(element.tag), int(inner.tag)) for inner in element.value[0]]
    return paths


def _as_documented(dataset: pydicom.Dataset) -> pydicom.Dataset:
    """pydicom's whole reading, less what the README says is not read: top-level binary
    values over 1 KiB and undefined-length values that are no sequence."""
    for tag in list(dataset.keys()):
        raw = dataset.get_item(tag)
        if not isinstance(raw, pydicom.dataelem.RawDataElement):
            continue
        kind = resolved_vr(raw.tag, raw.VR)
        if (raw.length > BULK_READ_LIMIT and kind in BULK_VRS) or raw.length == UNDEFINED:
            del dataset[tag]
    return dataset


def _truncated(dataset: pydicom.Dataset) -> bool:
    raws = (dataset.get_item(tag) for tag in dataset.keys())  # noqa: SIM118 - not converted
    return any(
        isinstance(raw, pydicom.dataelem.RawDataElement)
        and raw.value is not None
        and len(raw.value) < raw.length
        for raw in raws
    )


def _outcome(pattern: Pattern, dataset: pydicom.Dataset) -> str:
    try:
        return pattern.render(dataset, now=NOW, rng=random.Random(0))
    except RenderError as exc:
        return f"RenderError: {exc}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_a_corpus_file_renders_as_pydicom_reads_it(path: Path) -> None:
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            whole = dcmread(path, stop_before_pixels=True)
        except Exception:
            whole = None
    if whole is None or warned or "TransferSyntaxUID" not in whole.file_meta:
        pytest.skip("pydicom itself cannot read it cleanly")
    expected_dataset = _as_documented(dcmread(path, stop_before_pixels=True))  # unconverted
    if _truncated(expected_dataset):  # pydicom reads what there is; we refuse the object
        with open(path, "rb") as fp, pytest.raises(HeaderError, match="remain"):
            read_header(fp, _tag_paths(whole))
        return
    for tag_path in _tag_paths(whole)[:80]:
        head = ".".join(f"{tag:08X}" for tag in tag_path)
        for kind in ("", ",hash", ",number", ",offset,1", ",date,yyyyMMddHHmmss"):
            pattern = Pattern.parse(f"{{{head}{kind}}}")
            with open(path, "rb") as fp:
                ours = _outcome(pattern, read_header(fp, pattern.tag_paths))
            assert ours == _outcome(pattern, expected_dataset), pattern.source
