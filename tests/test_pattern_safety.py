"""The safety rule: whatever the attribute values and the pattern, the rendered path stays inside
the archive root, and only the pattern's own text makes directories (DESIGN.md invariant 4).

The hypothesis properties run 10,000 examples each, with hostile raw bytes in every character
set, as a worker receives them.
"""

import logging
import posixpath
import random
import re
from collections.abc import Iterator
from collections.abc import Sequence as Options
from datetime import datetime
from pathlib import PurePosixPath
from typing import TypeVar

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from pacs_ingest.shared.pattern import Pattern, PatternError, RenderError
from pacs_ingest.shared.pattern.hashes import java_hash
from pacs_ingest.shared.safe_path import (
    NAME_MAX,
    PATH_MAX,
    UnsafePathError,
    relative_path,
    safe_value,
)
from tests.pattern_support import NOW, dataset, render

ROOT = "/srv/archive"
EXAMPLES = 10_000
_INVALID_IN_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff/]")


@pytest.fixture(autouse=True, scope="module")
def quiet_pydicom() -> Iterator[None]:
    """Hostile bytes make pydicom log a warning per value; logging them all costs seconds."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def assert_inside_root(path: PurePosixPath) -> None:
    """What every archive path must be: relative, no dot components, valid names, short."""
    assert not path.is_absolute()
    assert path.parts
    for part in path.parts:
        assert part not in ("", ".", "..")
        assert not _INVALID_IN_NAME.search(part), part
        assert 1 <= len(part.encode("utf-8")) <= NAME_MAX
    joined = posixpath.normpath(posixpath.join(ROOT, str(path)))
    assert joined.startswith(ROOT + "/")
    assert len(joined.encode("utf-8")) < PATH_MAX


def archive_path(source: str, ds: Dataset) -> PurePosixPath:
    return relative_path(render(source, ds), root_length=len(ROOT))


# -- values never make directories ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "component"),
    [
        ("../../etc/passwd", ".._.._etc_passwd"),
        ("..", "__"),
        (".", "_"),
        ("/abs", "_abs"),
        ("a\0b", "a_b"),
        ("be\x07ll", "be_ll"),
        ("a\x85b", "a_b"),  # C1 control
    ],
)
def test_a_hostile_patient_id_stays_one_component(value: str, component: str) -> None:
    ds = Dataset()
    ds.add_new(0x00100020, "LO", value)
    assert archive_path("in/{PatientID}/x", ds) == PurePosixPath("in", component, "x")


def test_a_backslash_in_a_text_value_is_no_separator_either() -> None:
    assert archive_path("{ImageComments}", dataset(ImageComments="a\\b")) == PurePosixPath("a_b")


@pytest.mark.parametrize(
    ("kind", "component"), [("upper", "X_.._.."), ("slice,0", "x_.._.."), ("slice,-8", "x_.._..")]
)
def test_text_types_are_made_safe_too(kind: str, component: str) -> None:
    ds = dataset(ImageComments="x/../..")
    assert archive_path(f"{{ImageComments,{kind}}}", ds) == PurePosixPath(component)


def test_hash_and_md5_see_the_raw_value_so_they_match_dcm4che() -> None:
    ds = dataset(ImageComments="a/b")
    assert render("{ImageComments,hash}", ds) == java_hash("a/b")
    assert render("{ImageComments,urlencoded}", ds) == "a%2Fb"


def test_separators_from_the_pattern_itself_make_directories() -> None:
    ds = dataset(StudyDate="20111012", Rows=2, PatientID="P/1")
    source = "{StudyDate,date,yyyy/MM/dd}/{Rows,choice,0#one|2#two/{2}}/{PatientID}"
    assert archive_path(source, ds) == PurePosixPath("2011", "10", "12", "two", "P_1", "P_1")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("../x/{PatientID}", PurePosixPath("__", "x", "P1")),
        ("/x/{PatientID}", PurePosixPath("x", "P1")),
        ("a//b/./{PatientID}/..", PurePosixPath("a", "b", "_", "P1", "__")),
        ("{PatientID}/.../", PurePosixPath("P1", "___")),
    ],
)
def test_a_pattern_whose_literal_text_would_escape_stays_inside(
    source: str, expected: PurePosixPath
) -> None:
    assert archive_path(source, dataset(PatientID="P1")) == expected


def test_an_over_long_component_is_shortened_and_distinct_values_stay_distinct() -> None:
    first = archive_path("{ImageComments}", dataset(ImageComments="é" * 200 + "a"))
    second = archive_path("{ImageComments}", dataset(ImageComments="é" * 200 + "b"))
    assert len(first.name.encode()) <= NAME_MAX
    assert first != second


def test_a_path_too_long_for_the_file_system_is_refused() -> None:
    source = "/".join(["{ImageComments}"] * 20)
    with pytest.raises(UnsafePathError):
        archive_path(source, dataset(ImageComments="x" * 250))


def test_an_empty_path_is_refused() -> None:
    with pytest.raises(UnsafePathError):
        archive_path("/{PatientID}/", Dataset())


def test_safe_value_replaces_separators_controls_and_lone_surrogates() -> None:
    assert safe_value("a/b\\c\0d\x7fe\x9ff\ud800g") == "a_b_c_d_e_f_g"


# -- properties ----------------------------------------------------------------------------------
# Each example is decoded from one drawn byte string (`Entropy`): hypothesis spends ~0.1 ms per
# draw on this machine, and a pattern plus a data set built draw by draw cost ~4 ms before any
# rendering, 40 s for 10,000 examples. One draw keeps them to seconds; shrinking still works, as
# zero bytes decode to the first, simplest choices.

T = TypeVar("T")


class Entropy:
    """Choices read from bytes; past the end every choice is the first option."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def number(self, below: int) -> int:
        value = 0
        for _ in range(1 if below <= 256 else 4):
            byte = self.data[self.position] if self.position < len(self.data) else 0
            self.position += 1
            value = value << 8 | byte
        return value % below

    def pick(self, options: Options[T]) -> T:
        return options[self.number(len(options))]

    def blob(self, most: int) -> bytes:
        return bytes(self.number(256) for _ in range(self.number(most + 1)))


CHARSETS = [
    None,
    "ISO_IR 100",
    "ISO_IR 192",
    "ISO_IR 144",
    "GB18030",
    ["", "ISO 2022 IR 87"],
    ["ISO 2022 IR 13", "ISO 2022 IR 87"],
    ["", "ISO 2022 IR 149"],
    "NOT A CHARSET",
]
SEQUENCE = 0x00081140
ATTRIBUTES = {
    0x00080008: "CS",
    0x00080020: "DA",
    0x00080030: "TM",
    0x0008002A: "DT",
    0x00081030: "LO",
    0x00100010: "PN",
    0x00100020: "LO",
    0x00101030: "DS",
    0x00200013: "IS",
    0x0020000D: "UI",
    0x00204000: "LT",
    0x00280010: "US",
    0x00091001: "UN",
    SEQUENCE: "SQ",  # an item holding PatientID and, nested, the same again
}
HOSTILE = [
    b"..",
    b"../..",
    b".",
    b"/",
    b"a/b/../c",
    b"\\",
    b"..\\..\\x",
    b"\0",
    b"  ",
    b"\x1b$B;3ED\x1b(B",
    b"\xff\xfe",
    "é".encode() * 130,
    b"x" * 300,
    "Jérôme^Buc=山田^太郎".encode(),
    "\U0001f600/\u202e\x85".encode(),
    b"20111012",
    b"0930",
    b"20111012093005.5+0200",
    b"12",
    b"-1.5e3",
    b"ORIGINAL\\PRIMARY\\..",
]
HEADS = [
    "PatientID",
    "00100020",
    "PatientName",
    "StudyDate",
    "StudyTime",
    "0008002A",
    "InstanceNumber",
    "PatientWeight",
    "ImageComments",
    "ImageType[1]",
    "Rows",
    "00091001",
    "StudyDescription",
    "00081140.00100020",
    "00081140.00081140.00100020",
    "now",
    "rnd",
]
TYPES = [
    "",
    ",none",
    ",upper",
    ",slice,1",
    ",slice,-3,-1",
    ",hash",
    ",md5",
    ",urlencoded",
    ",number",
    ",number,#",
    ",number,0.00%",
    ",choice,0#a|1#../b|2<c/{0}",
    ",offset,1",
    ",date,yyyy/MM/dd",
    ",date-P1M,yyyy",
    ",time,HH/mm",
    ",time+PT1H,HH",
    ",date,full",
    ",time,long",
    ",uuid",
    ",uid",
    ",rnd",
]
LITERALS = ["/", ".", "..", "../", "'", "''", "a", "é", "\\", "\0", " ", "{", "}", ",", "#", "|"]
PIECES = (
    LITERALS
    + HEADS
    + [kind[1:] for kind in TYPES]
    + [f"{{{head}{kind}}}" for head in HEADS for kind in TYPES]
)
LAYOUTS = {  # patterns, and how many directories their own text makes at most
    "in/{PatientID}/x": 3,
    "{PatientName}": 1,
    "{00081140.00100020,upper}/{ImageComments,slice,1}": 2,
    "{now,date,yyyy/MM/dd}/{0020000D,hash}/{PatientID}/{ImageComments}.dcm": 6,
    "{StudyDate,date,yyyy}/{StudyDescription}{ImageType[1]}/{00091001}": 3,
}
MOMENTS = [NOW, datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), datetime(2012, 12, 30, 12)]


def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _item(value: bytes, *, nested: bool) -> Dataset:
    item = Dataset({Tag(0x00100020): _raw(0x00100020, "LO", value)})
    if nested:
        item[SEQUENCE] = DataElement(SEQUENCE, "SQ", Sequence([_item(value, nested=False)]))
    return item


def _described(ds: Dataset) -> list[tuple[str, object]]:
    """The elements as stored (repr(ds) would convert them, which may raise on hostile bytes)."""
    tags = list(ds.keys())  # iterating a Dataset converts its elements
    return [(f"{tag:08X}", ds.get_item(tag, keep_deferred=True).value) for tag in tags]


def hostile_pattern(entropy: Entropy) -> str:
    """One of the layouts, or up to 6 pieces: literal text, bare words, whole placeholders."""
    if entropy.number(3) == 0:
        return entropy.pick(sorted(LAYOUTS))
    return "".join(entropy.pick(PIECES) for _ in range(1 + entropy.number(6)))


def hostile_dataset(entropy: Entropy) -> Dataset:
    """Raw elements with arbitrary bytes, in an arbitrary character set, as a worker reads them."""
    ds = Dataset()
    for _ in range(entropy.number(5)):
        tag = entropy.pick(sorted(ATTRIBUTES))
        value = entropy.pick(HOSTILE) if entropy.number(2) else entropy.blob(12)
        if tag == SEQUENCE:
            ds[tag] = DataElement(tag, "SQ", Sequence([_item(value, nested=True)]))
        else:
            ds[tag] = _raw(tag, ATTRIBUTES[tag], value)
    charset = entropy.pick(CHARSETS)
    if charset is not None:
        ds.SpecificCharacterSet = charset
    return ds


@pytest.mark.filterwarnings("ignore")
@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.binary(max_size=120))
def test_no_pattern_and_no_values_make_a_path_outside_the_root_or_an_invalid_name(
    data: bytes,
) -> None:
    entropy = Entropy(data)
    source = hostile_pattern(entropy)
    ds = hostile_dataset(entropy)
    now = entropy.pick(MOMENTS)
    rng = random.Random(entropy.number(2**32))
    note(f"pattern {source!r}, now {now}, data set {_described(ds)}")
    try:
        rendered = Pattern.parse(source).render(ds, now=now, rng=rng)
        path = relative_path(rendered, root_length=len(ROOT))
    except (PatternError, RenderError, UnsafePathError) as exc:
        event(type(exc).__name__)
        return  # refused at start-up, or the object is quarantined: nothing is placed
    event("placed")
    assert_inside_root(path)
    if source in LAYOUTS:  # attribute values never add directories
        assert len(path.parts) <= LAYOUTS[source]


@settings(max_examples=1_000, deadline=None)
@given(text=st.text(max_size=1_000))
def test_the_final_check_accepts_any_text_or_refuses_it_only_when_empty(text: str) -> None:
    try:
        path = relative_path(text, root_length=len(ROOT))
    except UnsafePathError:
        assert not text.strip("/")
        return
    assert_inside_root(path)
