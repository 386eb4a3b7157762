"""The whole flow with real peers: DCMTK and pynetdicom send, `pacs-ingest up` files."""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.dsutils import split_dataset

from benchmarks.corpus import make_corpus
from pacs_ingest.shared import part10
from tests.conftest import Pipeline
from tests.helpers import (
    CorpusFile,
    archive_files,
    corpus,
    corpus_file,
    pynetdicom_send,
    rounds,
    started_processes,
    storescu_send,
    wait_until,
    waiting_objects,
)

SUCCESS = 0x0000
DATA_SET_TRAILING_PADDING = 0xFFFCFFFC


def test_echoscu_is_answered(pipeline: Pipeline) -> None:
    pipeline.up()
    result = subprocess.run(
        ["echoscu", "-aec", "INGEST", "127.0.0.1", str(pipeline.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_wrong_called_ae_title_is_rejected(pipeline: Pipeline) -> None:
    pipeline.up()
    result = subprocess.run(
        ["echoscu", "-aec", "SOMEONE", "127.0.0.1", str(pipeline.port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Called AE Title Not Recognized" in result.stderr


def _meta_uid(path: Path) -> str:
    with open(path, "rb") as fp:
        return part10.read_file_meta(fp).media_storage_sop_instance_uid


def _filed_by_uid(archive: Path) -> dict[str, Path]:
    return {_meta_uid(path): path for path in archive_files(archive)}


def _file_round(pipeline: Pipeline, expected: int) -> dict[str, Path]:
    """Wait until `expected` objects are filed and the spool is empty; move them aside."""
    wait_until(
        lambda: (
            len(archive_files(pipeline.archive)) >= expected and not waiting_objects(pipeline.spool)
        ),
        60,
        f"{expected} filed",
    )
    filed = _filed_by_uid(pipeline.archive)
    assert len(filed) == expected
    aside = pipeline.tmp_path / f"filed-{len(list(pipeline.tmp_path.glob('filed-*')))}"
    shutil.move(pipeline.archive, aside)
    pipeline.archive.mkdir()
    return {uid: aside / path.relative_to(pipeline.archive) for uid, path in filed.items()}


def _check_meta(stored: Path, source: CorpusFile, uid: str) -> None:
    with open(stored, "rb") as fp:
        meta = part10.read_file_meta(fp)
    assert meta.media_storage_sop_class_uid == source.sop_class_uid
    assert meta.media_storage_sop_instance_uid == uid
    assert meta.transfer_syntax_uid == source.transfer_syntax_uid


def _same_data_set(stored: Path, item: CorpusFile) -> bool:
    _, offset = split_dataset(item.path)
    with open(stored, "rb") as fp:
        stored_offset = part10.read_file_meta(fp).dataset_offset
    return stored.read_bytes()[stored_offset:] == item.path.read_bytes()[offset:]


def test_pynetdicom_corpus_is_filed_with_its_exact_data_set_bytes(pipeline: Pipeline) -> None:
    """Every file is filed byte for byte, except those whose data set has no SOP Instance UID
    (three in pydicom's corpus), which go to failed/ byte for byte, saying so."""
    pipeline.up()
    files = corpus()
    assert len(files) > 100
    nameless = [item for item in files if not item.dataset_sop_instance_uid]
    assert len(nameless) == 3
    for batch in rounds(files):
        statuses = pynetdicom_send(batch, pipeline.port, "INGEST")
        assert statuses == {item.path: SUCCESS for item in batch}
        filed = _file_round(pipeline, len([item for item in batch if item not in nameless]))
        for item in batch:
            if item in nameless:
                continue
            stored = filed[item.sop_instance_uid]
            _check_meta(stored, item, item.sop_instance_uid)
            assert _same_data_set(stored, item), item.path.name
    failed = {_meta_uid(path): path for path in sorted((pipeline.spool / "failed").glob("*.dcm"))}
    assert sorted(failed) == sorted(item.sop_instance_uid for item in nameless)
    for item in nameless:
        stored = failed[item.sop_instance_uid]
        assert _same_data_set(stored, item), item.path.name
        reason = json.loads(stored.with_suffix(".json").read_text())
        assert reason["reason"] == "no SOP Instance UID", item.path.name


def _values(ds: Dataset) -> dict:
    """Tag -> decoded value, recursively, leaving out what a sender may legitimately change:
    trailing padding (FFFC,FFFC), which PS3.10 gives no meaning, group lengths (gggg,0000), and
    the VR of encapsulated Pixel Data (DCMTK corrects OW to OB)."""
    return {
        e.tag: [_values(item) for item in e.value] if e.VR == "SQ" else e.value
        for e in ds
        if e.tag != DATA_SET_TRAILING_PADDING and e.tag.element != 0
    }


def _meaningful(path: Path) -> dict:
    return _values(dcmread(path))


def test_dcmtk_corpus_is_filed_and_decodes_to_the_same_data_set(pipeline: Pipeline) -> None:
    pipeline.up()
    files = corpus()
    unreadable = []
    for batch in rounds(files):
        run = storescu_send(batch, pipeline.port, "INGEST", pipeline.tmp_path)
        assert not run.other, run.output[-3000:]
        unreadable += run.unreadable
        filed = _file_round(pipeline, len(run.succeeded))
        for item in run.succeeded:
            uid = item.dataset_sop_instance_uid or item.sop_instance_uid
            stored = filed.get(uid) or filed[item.sop_instance_uid]
            with open(stored, "rb") as fp:
                _check_meta(stored, item, part10.read_file_meta(fp).media_storage_sop_instance_uid)
            assert _meaningful(stored) == _meaningful(item.path), item.path.name
    # DCMTK cannot parse a handful of the corpus's deliberately odd files; it never sends them.
    assert len(unreadable) <= len(files) // 10, [f.path.name for f in unreadable]


@pytest.mark.parametrize("processes", [2])
def test_receive_and_work_run_apart_and_a_killed_worker_loses_nothing(
    pipeline: Pipeline, processes: int
) -> None:
    sources = make_corpus(pipeline.tmp_path / "corpus", 400, size=8192)
    pipeline.receive(sweep_interval=1)  # the killed worker's claims come back by recovery
    worker = pipeline.work("--processes", str(processes))
    sender = subprocess.Popen(
        [
            "storescu",
            "-aec",
            "INGEST",
            "+sd",
            "127.0.0.1",
            str(pipeline.port),
            str(pipeline.tmp_path / "corpus"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_until(lambda: len(archive_files(pipeline.archive)) >= 40, 60, "the first objects filed")
    worker.kill()
    assert sender.wait(120) == 0
    pipeline.work("--processes", str(processes))
    wait_until(
        lambda: len(archive_files(pipeline.archive)) == len(sources),
        90,
        f"all {len(sources)} filed",
    )
    expected = {dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in sources}
    assert set(_filed_by_uid(pipeline.archive)) == expected
    assert not waiting_objects(pipeline.spool)
    assert not any((pipeline.spool / "failed").iterdir())


def test_a_burst_worker_files_the_backlog_and_exits(pipeline: Pipeline) -> None:
    sources = make_corpus(pipeline.tmp_path / "corpus", 20, size=4096)
    pipeline.receive()
    assert set(
        pynetdicom_send([corpus_file(p) for p in sources], pipeline.port, "INGEST").values()
    ) == {SUCCESS}
    worker = pipeline.work("--burst")
    assert worker.process.wait(60) == 0
    assert len(archive_files(pipeline.archive)) == 20


def test_a_burst_whose_worker_was_killed_exits_with_that_workers_status(pipeline: Pipeline) -> None:
    """A worker killed while starting (its imports take a second) fails the burst: 128 + 9, as a
    shell reports SIGKILL; the other worker still empties the queue."""
    worker = pipeline.work("--burst", "--processes", "2")
    wait_until(lambda: started_processes(worker.log()), 30, "the first worker process")
    os.kill(started_processes(worker.log())[0][1], signal.SIGKILL)
    assert worker.process.wait(60) == 128 + signal.SIGKILL
    assert '"process.failed"' in worker.log()
