"""The pattern on the command line, run as users run it: `pacs-ingest render PATTERN FILE...` tries
a layout on real files before any modality is pointed at the receiver, and a receiver refuses a
bad `--filepath` before it starts."""

import subprocess
import sys
from datetime import datetime
from pathlib import Path

from pydicom.data import get_charset_files

from pacs_ingest.shared.pattern.hashes import java_hash
from tests.helpers import ROOT
from tests.pattern_support import dataset, part10

DCM4CHEE_ARC = "{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}"


def pacs_ingest(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pacs_ingest", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def _write(path: Path, **attributes: object) -> Path:
    """A Part 10 file with these attributes, and a SOP Instance UID unless given (or None)."""
    attributes.setdefault("SOPInstanceUID", "1.2.3.4.5")
    given = {keyword: value for keyword, value in attributes.items() if value is not None}
    path.write_bytes(part10(dataset(**given)))
    return path


def test_render_prints_the_archive_path_of_each_file_in_order(tmp_path: Path) -> None:
    uids = {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4"}
    first = _write(tmp_path / "a.dcm", SOPInstanceUID="1.2.3.4.5", **uids)
    second = _write(tmp_path / "b.dcm", SOPInstanceUID="1.2.3.4.6", **uids)
    result = pacs_ingest("render", DCM4CHEE_ARC, first, second)
    assert result.returncode == 0, result.stderr
    day = datetime.now().strftime("%Y/%m/%d")
    assert result.stdout.splitlines() == [
        f"{day}/02C82A3A/71668980/{java_hash('1.2.3.4.5')}",
        f"{day}/02C82A3A/71668980/{java_hash('1.2.3.4.6')}",
    ]


def test_render_shows_the_safety_rule_and_decoded_names(tmp_path: Path) -> None:
    hostile = _write(tmp_path / "hostile.dcm", PatientID="../../etc")
    russian = Path(get_charset_files("chrRuss.dcm")[0])
    result = pacs_ingest("render", "/{PatientID}/{PatientName}/x", hostile, russian)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ".._.._etc/x"
    assert result.stdout.splitlines()[1].startswith("SCSRUSS/Люк")


def test_a_bad_pattern_exits_2_and_points_at_the_column(tmp_path: Path) -> None:
    result = pacs_ingest("render", "{PatientID}/{StudyDate,dat}", _write(tmp_path / "a.dcm"))
    assert result.returncode == 2
    assert "column 24: unknown type 'dat'" in result.stderr
    assert "\n  {PatientID}/{StudyDate,dat}\n" + " " * 25 + "^" in result.stderr
    assert result.stdout == ""


def test_an_unreadable_file_is_reported_and_the_others_still_print(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not DICOM")
    good = _write(tmp_path / "good.dcm", PatientID="P1")
    result = pacs_ingest("render", "{PatientID}", text, tmp_path / "missing.dcm", good)
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["P1"]
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{text}: error: ")
    assert errors[1].startswith(f"{tmp_path / 'missing.dcm'}: error: ")


def test_a_file_without_sop_instance_uid_is_reported_as_a_worker_would_refuse_it(
    tmp_path: Path,
) -> None:
    nameless = _write(tmp_path / "a.dcm", PatientID="P1", SOPInstanceUID=None)
    result = pacs_ingest("render", "{PatientID}", nameless)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"{nameless}: error: the data set ends without a SOP Instance UID (0008,0018)\n"
    )


def test_an_object_the_pattern_cannot_render_is_reported(tmp_path: Path) -> None:
    result = pacs_ingest("render", "{StudyDate,date-P1M}", _write(tmp_path / "a.dcm"))
    assert result.returncode == 1
    assert "error: {StudyDate,date-P1M}: the date to shift is missing" in result.stderr


def test_an_unclosed_brace_is_warned_about(tmp_path: Path) -> None:
    result = pacs_ingest(
        "render", "{PatientID}/{StudyDate", _write(tmp_path / "a.dcm", PatientID="P")
    )
    assert result.returncode == 0
    assert result.stdout == "P\n"
    assert "unclosed '{' drops '{StudyDate'" in result.stderr


def test_a_receiver_refuses_a_bad_filepath_at_start_up_with_the_column(tmp_path: Path) -> None:
    result = pacs_ingest(
        "up",
        "-b",
        "INGEST:11112",
        "--spool-dir",
        tmp_path / "spool",
        "--filepath",
        "{now,date,yyyy/MM/dd}/{0020000D,hash}/{00080018,md6}",
    )
    assert result.returncode == 2
    assert "invalid --filepath at column 49: unknown type 'md6'" in result.stderr
    assert not (tmp_path / "spool").exists()
