"""`reprocess --resort`: the archive re-sorted in place into a new --filepath, SIGKILLed midway
and run again, ends with every object exactly once at its new path, byte-identical."""

import shutil
from pathlib import Path

import pytest
from pydicom import dcmread

from benchmarks.corpus import make_corpus
from tests.conftest import Pipeline
from tests.helpers import Command, archive_files, wait_until, waiting_objects

OBJECTS = 2000
NEW_LAYOUT = "{00100020}/{0020000D}/{00080018}.dcm"


def _new_path(archive: Path, source: Path) -> Path:
    ds = dcmread(source, stop_before_pixels=True)
    return archive / ds.PatientID / ds.StudyInstanceUID / f"{ds.SOPInstanceUID}.dcm"


def _resort(pipeline: Pipeline) -> Command:
    return pipeline.run(
        "reprocess",
        *("--spool-dir", str(pipeline.spool), "--redis-url", pipeline.redis_url),
        *("--directory", str(pipeline.archive), "--filepath", NEW_LAYOUT, "--resort"),
        log_name="resort.log",
    )


@pytest.mark.timeout(240)
def test_a_resort_killed_midway_and_run_again_files_every_object_once_at_its_new_path(
    pipeline: Pipeline,
) -> None:
    sources = make_corpus(pipeline.tmp_path / "corpus", OBJECTS, size=1024, per_series=50)
    old = pipeline.archive / "old-layout"
    old.mkdir(parents=True)
    for index, source in enumerate(sources):
        shutil.copy(source, old / f"{index:05d}.dcm")
    (pipeline.archive / "README.txt").write_text("not DICOM: stays where it is")
    expected = {_new_path(pipeline.archive, source): source for source in sources}

    up = pipeline.up("--workers", "2", sweep_interval=1)
    first = _resort(pipeline)
    wait_until(lambda: len(list(old.iterdir())) < OBJECTS * 2 // 3, 60, "the re-sort under way")
    first.kill()  # SIGKILL the re-sort, and the receivers and workers filing what it moved
    up.kill()
    assert 0 < len(list(old.iterdir())) < OBJECTS

    pipeline.up("--workers", "2", sweep_interval=1)
    second = _resort(pipeline)
    assert second.process is not None
    assert second.process.wait(120) == 0, second.log()
    wait_until(
        lambda: (
            not waiting_objects(pipeline.spool)
            and len(archive_files(pipeline.archive)) == OBJECTS + 1
        ),
        120,
        "everything filed",
    )
    filed = set(archive_files(pipeline.archive)) - {pipeline.archive / "README.txt"}
    assert filed == set(expected)
    assert all(path.read_bytes() == expected[path].read_bytes() for path in filed)
    assert not any((pipeline.spool / "failed").iterdir())
    assert not any(old.iterdir())
    assert "not DICOM 1" in second.log()
