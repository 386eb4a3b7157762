"""The `--filepath` language beyond the reference's vectors: what header reading needs, purity,
transfer syntaxes, date and time values, and how a worker answers an object it cannot render."""

import random
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs_ingest.shared.jobs import Filing
from pacs_ingest.shared.pattern import Pattern, RenderError
from pacs_ingest.shared.pattern.hashes import java_hash
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.ingest import file_object
from tests.pattern_support import NOW, dataset, part10, read_back, render

DCM4CHEE_ARC = "{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}"
UIDS = dataset(StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4", SOPInstanceUID="1.2.3.4.5")


def test_dcm4chee_arc_default_layout_files_by_day_and_hashed_uids() -> None:
    expected = f"2024/02/29/02C82A3A/71668980/{java_hash('1.2.3.4.5')}"
    assert render(DCM4CHEE_ARC, UIDS) == expected


@pytest.mark.parametrize(
    ("source", "tag_paths"),
    [
        ("{0020000D}/{00080018}", ((0x0020000D,), (0x00080018,))),
        ("{00081140.00081155}", ((0x00081140, 0x00081155),)),
        ("{now,date,yyyy}/{rnd}/{rnd,uuid}", ()),
        ("literal", ()),
        ("{PatientID}'{StudyDate}'", ((0x00100020,), (0x00080020,))),  # quoted away, still parsed
    ],
)
def test_the_tag_paths_are_what_rendering_reads(
    source: str, tag_paths: tuple[tuple[int, ...], ...]
) -> None:
    assert Pattern.parse(source).tag_paths == tag_paths


def test_the_header_has_the_character_set_for_a_tag_below_it() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.add_new(0x00080001, "LO", "J\xe9r\xf4me".encode("latin-1"))
    assert render("{00080001}", ds) == "Jérôme"


def test_rendering_is_a_function_of_the_data_set_clock_and_random_source() -> None:
    source = "{now,date,yyyyMMddHHmmss}/{rnd}/{rnd,uuid}/{PatientID,uid}/{PatientID}"
    ds = dataset(PatientID="P1")
    assert render(source, ds, seed=11) == render(source, ds, seed=11)
    assert render(source, ds, seed=11) != render(source, ds, seed=12)
    later = datetime(2030, 1, 1)
    assert render(source, ds, now=later, seed=11).startswith("20300101000000/")


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "big"])
def test_every_uncompressed_transfer_syntax_renders_the_same(syntax: str) -> None:
    ds = dataset(
        PatientID="P1",
        StudyDate="20111012",
        Rows=512,
        PixelSpacing=["0.5", "0.25"],
        FrameIncrementPointer=0x00181063,
        ReferencedImageSequence=Sequence([dataset(ReferencedSOPInstanceUID="9.8")]),
    )
    source = (
        "{PatientID}/{StudyDate,date,yyyy}/{Rows,number,#,##0}/{PixelSpacing[1],number,0.00}/"
        "{FrameIncrementPointer}/{ReferencedImageSequence.ReferencedSOPInstanceUID}"
    )
    assert render(source, ds, syntax=syntax) == "P1/2011/512/0.25/00181063/9.8"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns: invalid on purpose
@pytest.mark.parametrize(
    ("keyword", "value", "style", "expected"),
    [
        ("StudyDate", "2011.10.12", "date,yyyy-MM-dd", "2011-10-12"),  # ACR-NEMA dates
        ("StudyTime", "093000.123", "time,HH:mm:ss.SSS", "09:30:00.123"),
        ("StudyTime", "09:30", "time,HH:mm", "09:30"),
        ("StudyTime", "0930", "date,yyyy-MM-dd", "1970-01-01"),  # a time alone is on day 0
        ("AcquisitionDateTime", "20111012093005.5+0200", "date,yyyy-MM-dd HH:mm:ss", None),
        ("AcquisitionDateTime", "2011", "date,yyyy-MM-dd HH:mm", "2011-01-01 00:00"),
        ("AcquisitionDateTime", "201110120930", "time,HH:mm", "09:30"),
    ],
)
def test_date_and_time_values(keyword: str, value: str, style: str, expected: str | None) -> None:
    rendered = render(f"{{{keyword},{style}}}", dataset(**{keyword: value}))
    # A DT's UTC offset is ignored: the wall-clock time is shown as written.
    assert rendered == (expected or "2011-10-12 09:30:05")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns: invalid on purpose
@pytest.mark.parametrize(
    ("vr", "value", "source"),
    [
        ("DA", "20111301", "{00080020,date}"),
        ("TM", "2400", "{00080030,time}"),
        ("LO", "P1", "{00100020,date}"),
    ],
)
def test_a_value_that_is_no_date_cannot_render(vr: str, value: str, source: str) -> None:
    ds = Dataset()
    tag = Pattern.parse(source).placeholders[0].path[0]
    ds.add_new(tag, vr, value)
    pattern = Pattern.parse(source)
    with pytest.raises(RenderError):
        pattern.render(read_back(ds, pattern), now=NOW, rng=random.Random())


def test_large_binary_values_are_bulk_data_that_is_not_read() -> None:
    ds = Dataset()
    ds.add_new(0x00091010, "OB", b"\x07" * 2048)  # deferred by the header reader
    ds.add_new(0x00091011, "OB", b"\x07" * 16)
    assert render("{00091010}|{00091010,hash}|{00091011}", ds) == "|null|7"


def test_render_errors_are_value_errors() -> None:
    assert issubclass(RenderError, ValueError)


def test_the_first_value_of_a_multi_valued_number_is_used() -> None:
    assert render("{PixelSpacing,number,0.0}", dataset(PixelSpacing=["0.5", "0.25"])) == "0.5"


def test_a_choice_text_can_hold_literal_separators() -> None:
    assert render("{Rows,choice,0#small|512#large/{0}}", dataset(Rows=512)) == "large/512"


def test_date_styles_may_hold_quoted_text() -> None:
    assert render("{StudyDate,date,yyyy'y'MM'm'}", dataset(StudyDate="20111012")) == "2011y10m"


def test_a_worker_quarantines_an_object_it_cannot_render(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    archive = tmp_path / "archive"
    archive.mkdir()
    spool.ready_path("obj").write_bytes(part10(dataset(PatientID="P1", SOPInstanceUID="1.2.3")))
    filing = Filing(str(archive), "{StudyDate,date-P1M,yyyy}/{PatientID}", 0, 0)
    filed = file_object(spool, "obj", filing, random.Random())
    assert filed.outcome == "quarantined"
    reason = orjson.loads((spool.failed / "obj.json").read_bytes())
    assert reason["reason"] == "cannot render"
    assert reason["error_type"] == "RenderError"
    assert not any(archive.iterdir())


def test_a_worker_files_an_object_under_its_rendered_path(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    archive = tmp_path / "archive"
    archive.mkdir()
    spool.ready_path("obj").write_bytes(part10(UIDS))
    filed = file_object(spool, "obj", Filing(str(archive), DCM4CHEE_ARC, 0, 0), random.Random())
    today = datetime.now().strftime("%Y/%m/%d")
    assert filed.outcome == "filed"
    assert filed.target is not None
    assert filed.target.relative_to(archive).as_posix() in {
        f"{day}/02C82A3A/71668980/{java_hash('1.2.3.4.5')}"
        for day in (today, datetime.now().strftime("%Y/%m/%d"))
    }
