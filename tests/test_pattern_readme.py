"""The README's `--filepath` section is checked against the renderer, so its examples stay true."""

import re

import pytest

from tests.helpers import ROOT
from tests.pattern_support import dataset, render

SECTION = (ROOT / "README.md").read_text().split("## The --filepath language", 1)[1]
EXAMPLE_OBJECT = dataset(
    PatientID="123456789",
    PatientName="Simson^Homer",
    StudyDate="20111012",
    StudyTime="0930",
    StudyInstanceUID="1.2.3",
    SeriesInstanceUID="1.2.3.4",
    SOPInstanceUID="1.2.3.4.5",
    InstanceNumber="2",
    SliceThickness="1.25",
    Rows=512,
    ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
    StudyDescription="CT Head/Neck",
)
RANDOM_SHAPES = {
    "{rnd}": r"[0-9A-F]{8}",
    "{rnd,uuid}": r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
    "{rnd,uid}": r"2\.25\.[1-9][0-9]{0,38}",
}


def _table_rows() -> list[tuple[str, str]]:
    """(example, what it renders) of each row of the types table."""
    rows = []
    for line in SECTION.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 4 and cells[1].startswith("`{"):
            rows.append((cells[1].strip("`"), cells[2]))
    return rows


def test_the_types_table_has_an_example_for_every_type() -> None:
    examples = " ".join(example for example, _ in _table_rows())
    for kind in ["upper", "slice", "hash", "md5", "urlencoded", "number", "choice", "offset"]:
        assert f",{kind}" in examples
    for kind in ["date", "date-P1M", "time", "time+PT30M", "rnd", "uuid", "uid", "[1]"]:
        assert kind in examples


@pytest.mark.parametrize(("example", "renders"), _table_rows())
def test_each_example_in_the_types_table_renders_as_documented(example: str, renders: str) -> None:
    rendered = render(example, EXAMPLE_OBJECT)
    if renders.startswith("e.g. "):
        assert re.fullmatch(RANDOM_SHAPES[example], rendered)
        assert re.fullmatch(RANDOM_SHAPES[example], renders.removeprefix("e.g. ").strip("`"))
    else:
        assert f"`{rendered}`" == renders


def test_the_dcm4chee_arc_layout_example_is_what_it_renders() -> None:
    layout = "{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}"
    assert f"'{layout}'" in SECTION
    assert f"`archive/{render(layout, EXAMPLE_OBJECT)}`" in SECTION
