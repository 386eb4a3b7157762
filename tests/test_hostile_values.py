"""Attribute values chosen to escape the archive never produce a file outside --directory."""

import os
from pathlib import Path, PurePosixPath

import pytest

from benchmarks.corpus import make_corpus
from pacs_ingest.shared.safe_path import NAME_MAX, UnsafePathError, relative_path, safe_value
from tests.conftest import Pipeline
from tests.helpers import archive_files, corpus_file, pynetdicom_send, wait_until

# PatientID -> the folder it must be filed in (the first component of the rendered path).
HOSTILE_PATIENT_IDS = {
    "../../x": ".._.._x",
    "/abs": "_abs",
    "a/b": "a_b",
    "..": "__",
    "a\x00b": "a_b",
    "x" * 1000: str(relative_path("x" * 1000)),
    ".": "_",
    "a\\b": "a",  # a backslash separates values; the first one is used
    "\x1b[2J": "[2J",  # leading characters up to U+0020 are trimmed, as dcm4che does
    "a\x1bb": "a_b",
}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../../x", ".._.._x"),
        ("/abs", "_abs"),
        ("a/b", "a_b"),
        ("a\x00b", "a_b"),
        ("a\\b", "a_b"),
        ("\x1b[2J", "_[2J"),
        ("Müller^Jürgen", "Müller^Jürgen"),
    ],
)
def test_a_value_loses_separators_and_control_characters(value: str, expected: str) -> None:
    assert safe_value(value) == expected


@pytest.mark.parametrize(
    ("rendered", "expected"),
    [
        ("../../x", "__/__/x"),
        ("/abs/x", "abs/x"),
        ("a//b/", "a/b"),
        ("./a/.", "_/a/_"),
        ("...", "___"),
        ("a/.hidden", "a/.hidden"),
    ],
)
def test_a_rendered_path_stays_below_the_root(rendered: str, expected: str) -> None:
    assert relative_path(rendered) == PurePosixPath(expected)


def test_an_over_long_component_is_shortened_but_stays_distinct() -> None:
    first = relative_path("x" * 1000)
    second = relative_path("x" * 999 + "y")
    assert len(str(first).encode()) <= NAME_MAX
    assert first != second


def test_a_multibyte_component_is_cut_on_a_character_boundary() -> None:
    component = str(relative_path("ü" * 300))
    assert len(component.encode()) <= NAME_MAX
    component.encode("utf-8").decode("utf-8")


@pytest.mark.parametrize("rendered", ["", "/", "//"])
def test_an_empty_path_is_refused(rendered: str) -> None:
    with pytest.raises(UnsafePathError):
        relative_path(rendered)


def test_a_path_longer_than_the_file_system_allows_is_refused() -> None:
    with pytest.raises(UnsafePathError):
        relative_path("/".join(["d" * 200] * 30))


def _inside(path: Path, *roots: Path) -> bool:
    return any(path.resolve().is_relative_to(root.resolve()) for root in roots)


def test_hostile_patient_ids_are_filed_inside_the_archive(pipeline: Pipeline) -> None:
    values = list(HOSTILE_PATIENT_IDS)

    def hostile(ds, index: int) -> None:
        ds.PatientID = values[index]

    sources = make_corpus(
        pipeline.tmp_path / "corpus", len(HOSTILE_PATIENT_IDS), size=4096, customise=hostile
    )
    pipeline.up("--filepath", "{00100020}/{00080018}.dcm")
    statuses = pynetdicom_send([corpus_file(p) for p in sources], pipeline.port, "INGEST")
    assert set(statuses.values()) == {0}
    wait_until(lambda: len(archive_files(pipeline.archive)) == len(sources), 30, "all filed")
    for root, dirs, files in os.walk(pipeline.tmp_path):
        for name in dirs + files:
            assert _inside(Path(root, name), pipeline.tmp_path), name
    filed = archive_files(pipeline.archive)
    assert all(_inside(p, pipeline.archive) for p in filed)
    folders = sorted(p.relative_to(pipeline.archive).parts[0] for p in filed)
    assert folders == sorted(HOSTILE_PATIENT_IDS.values())
    assert not any((pipeline.spool / "failed").iterdir())
