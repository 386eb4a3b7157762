"""Names in every character set that ships with pydicom become the right UTF-8 path components.

pydicom's `charset_files` (written by others: ISO 8859 parts, ISO 2022 Japanese and Korean with
code extensions, GB18030, UTF-8, and items with their own character set) are rendered with
`{PatientName}` through the worker's header reader and compared with pydicom's own decoding.
"""

import random
from pathlib import Path, PurePosixPath

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs_ingest.shared.pattern import Pattern
from pacs_ingest.shared.safe_path import relative_path
from pacs_ingest.workers.header import read_header
from tests.pattern_support import NOW, render

CHARSET_FILES = sorted(Path(p) for p in get_charset_files("*.dcm"))
RUSSIAN = "Люкceмбypг"  # noqa: RUF001 - as in chrRuss.dcm, where c, e, y and p are Latin


def _name_path(ds: Dataset) -> tuple[str, str]:
    """(tag path, pydicom's decoding) of the first Patient's Name, top-level or in an item."""
    if "PatientName" in ds:
        return "PatientName", str(ds.PatientName)
    for element in ds:
        if element.VR == "SQ" and element.value and "PatientName" in element.value[0]:
            return f"{element.keyword}.PatientName", str(element.value[0].PatientName)
    raise AssertionError("no Patient's Name")


def test_the_charset_files_are_there_to_test() -> None:
    assert len(CHARSET_FILES) >= 15


@pytest.mark.parametrize("path", CHARSET_FILES, ids=lambda p: p.name)
def test_a_charset_file_renders_the_name_pydicom_decodes_as_one_utf8_component(
    path: Path,
) -> None:
    tag_path, decoded = _name_path(dcmread(path))
    pattern = Pattern.parse(f"{{{tag_path}}}")
    with open(path, "rb") as fp:
        rendered = pattern.render(read_header(fp, pattern.tag_paths), now=NOW, rng=random.Random())
    # dcm4che keeps the value as written; pydicom drops empty trailing groups ("A^B=" -> "A^B").
    assert rendered.rstrip("=") == decoded
    rendered.encode("utf-8")  # valid: no lone surrogates
    assert relative_path(rendered) == PurePosixPath(rendered)


def test_non_ascii_names_survive_as_they_are() -> None:
    names = set()
    for path in CHARSET_FILES:
        tag_path, _ = _name_path(dcmread(path))
        pattern = Pattern.parse(f"{{{tag_path}}}")
        with open(path, "rb") as fp:
            header = read_header(fp, pattern.tag_paths)
        names.add(pattern.render(header, now=NOW, rng=random.Random()))
    assert {"Buc^Jérôme", "Διονυσιος", "やまだ^たろう", "김희중", RUSSIAN} <= names
    assert "Yamada^Tarou=山田^太郎=やまだ^たろう" in names
    assert "Wang^XiaoDong=王^小东=" in names  # GB18030


def test_an_item_uses_its_own_character_set_else_its_parents() -> None:
    own = Dataset()
    own.SpecificCharacterSet = "ISO_IR 144"
    own.add_new(0x00100010, "PN", RUSSIAN.encode("iso8859_5"))
    inherited = Dataset()
    inherited.add_new(0x00100010, "PN", "Jérôme".encode("latin-1"))
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.add_new(0x00081140, "SQ", Sequence([own]))
    ds.add_new(0x00081250, "SQ", Sequence([inherited]))
    assert render("{00081140.00100010}/{00081250.00100010}", ds) == f"{RUSSIAN}/Jérôme"
