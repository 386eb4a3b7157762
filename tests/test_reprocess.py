"""`pacs-ingest reprocess`: failed/ back through filing, folder trees, and a hot folder."""

import os
import shutil
import subprocess
import sys

from benchmarks.corpus import make_corpus
from tests.conftest import Pipeline
from tests.helpers import ROOT, archive_files, corpus_file, pynetdicom_send, wait_until


def _reprocess_args(pipeline: Pipeline) -> tuple[str, ...]:
    """`reprocess` on this pipeline's spool, queue and archive."""
    return (
        "reprocess",
        "--spool-dir",
        str(pipeline.spool),
        "--redis-url",
        pipeline.redis_url,
        "--directory",
        str(pipeline.archive),
    )


def _reprocess(pipeline: Pipeline, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pacs_ingest",
            *_reprocess_args(pipeline),
            *args,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_failed_objects_are_filed_again_with_a_better_pattern(pipeline: Pipeline) -> None:
    objects = make_corpus(pipeline.tmp_path / "corpus", 5, size=4096)
    pipeline.up("--filepath", "{PatientComments}")  # absent: an empty path, so failed/
    assert set(
        pynetdicom_send([corpus_file(p) for p in objects], pipeline.port, "INGEST").values()
    ) == {0}
    wait_until(
        lambda: len(list((pipeline.spool / "failed").glob("*.json"))) == 5, 30, "all quarantined"
    )
    result = _reprocess(pipeline, "--failed", "--filepath", "{PatientID}/{SOPInstanceUID}.dcm")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: len(archive_files(pipeline.archive)) == 5, 30, "all filed")
    assert not any((pipeline.spool / "failed").iterdir())
    assert all(p.parent.name.startswith("PAT") for p in archive_files(pipeline.archive))


def test_a_folder_tree_is_imported_and_its_files_left_alone(pipeline: Pipeline) -> None:
    tree = pipeline.tmp_path / "export"
    make_corpus(tree / "a", 3, size=4096)
    make_corpus(tree / "b" / "c", 2, size=4096)
    (tree / "DICOMDIR.txt").write_text("not DICOM")
    pipeline.work()
    result = _reprocess(pipeline, "--import", str(tree))
    assert result.returncode == 0, result.stderr
    assert "reprocess.skipped" in result.stderr
    wait_until(lambda: len(archive_files(pipeline.archive)) == 5, 30, "all filed")
    assert len([p for p in tree.rglob("*") if p.is_file()]) == 6


def test_a_hot_folder_is_emptied_into_the_archive(pipeline: Pipeline) -> None:
    hot = pipeline.tmp_path / "hot"
    hot.mkdir()
    objects = make_corpus(pipeline.tmp_path / "corpus", 4, size=4096)
    shutil.copy(objects[0], hot / "early.dcm")  # there before the watch starts
    pipeline.work()
    watcher = pipeline.run(
        *_reprocess_args(pipeline),
        "--watch",
        str(hot),
        log_name="watch.log",
    )
    for index, source in enumerate(objects[1:]):
        shutil.copy(source, hot / f".{index}.part")  # written under a hidden name,
        os.rename(hot / f".{index}.part", hot / f"{index}.dcm")  # then moved into place
    wait_until(lambda: len(archive_files(pipeline.archive)) == 4, 30, "all filed")
    wait_until(lambda: not any(hot.iterdir()), 10, "the hot folder emptied")
    assert watcher.stop() == 0
