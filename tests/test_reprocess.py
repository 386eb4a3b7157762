"""`pacs-ingest reprocess`: failed/ back through filing, folder trees, and a hot folder."""

import contextlib
import os
import pty
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from benchmarks.backlog import synthetic_object
from benchmarks.corpus import make_corpus
from pacs_ingest.shared.keys import names_key
from tests.conftest import Pipeline
from tests.helpers import (
    ROOT,
    archive_files,
    corpus_file,
    pynetdicom_send,
    wait_until,
    waiting_objects,
)


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


def _tree(root: Path, folders: int, per_folder: int) -> int:
    """Synthetic small objects in `folders` folders, plus one file that is not DICOM."""
    for folder in range(folders):
        (root / f"{folder:04d}").mkdir(parents=True)
        for index in range(per_folder):
            name = uuid.uuid4()
            (root / f"{folder:04d}" / f"{index}.dcm").write_bytes(
                synthetic_object(f"2.25.{name.int}")
            )
    (root / "notes.txt").write_text("not DICOM")
    return folders * per_folder


def test_progress_on_a_terminal_is_a_live_bar_and_ends_in_a_summary(pipeline: Pipeline) -> None:
    tree = pipeline.tmp_path / "export"
    objects = _tree(tree, 3, 20)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "pacs_ingest", *_reprocess_args(pipeline), "--import", str(tree)],
        cwd=ROOT,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"},
    )
    os.close(terminal)
    output = b""
    with contextlib.suppress(OSError):  # EIO once the last writer has gone
        while chunk := os.read(controller, 65536):
            output += chunk
    os.close(controller)
    assert process.wait(30) == 0, output
    text = output.decode(errors="replace")
    assert "\x1b[" in text  # drawn with terminal control sequences
    assert "━" in text  # rich's bar
    assert f"{objects + 1} files" in text
    assert f"found {objects + 1}, enqueued {objects}, not DICOM 1, errors 0" in text


def _sample_rss(process: subprocess.Popen, peak: list[int]) -> None:
    """Keep the highest RSS of `process` in peak[0] until it exits."""
    while process.poll() is None:
        with contextlib.suppress(FileNotFoundError, AssertionError):
            peak[0] = max(peak[0], _rss_kib(process.pid))
        time.sleep(0.02)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.timeout(180)
def test_on_a_pipe_progress_is_plain_lines_and_memory_stays_flat_over_100000_files(
    redis_url: str,
) -> None:
    base = Path(tempfile.mkdtemp(prefix="pacs-reprocess-test-", dir="/dev/shm"))
    try:
        tree = base / "export"
        objects = _tree(tree, 100, 1000)
        spool = base / "spool"
        process = subprocess.Popen(
            [
                sys.executable, "-m", "pacs_ingest", "reprocess",
                "--spool-dir", str(spool), "--redis-url", redis_url,
                "--directory", str(base / "archive"), "--import", str(tree), "--move",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        assert process.stderr is not None and process.stdout is not None
        peak = [0]
        sampler = threading.Thread(target=_sample_rss, args=(process, peak), daemon=True)
        sampler.start()
        lines = []  # (files found, RSS in KiB) at each progress line
        for line in process.stderr:
            assert "\x1b" not in line
            if line.startswith("reprocess: found "):
                lines.append((int(line.split()[2].rstrip(",")), _rss_kib(process.pid)))
        summary = process.stdout.read()
        assert process.wait(60) == 0
        sampler.join()
        assert f"found {objects + 1}, enqueued {objects}, not DICOM 1, errors 0" in summary
        assert len(waiting_objects(spool)) == objects
        assert Redis.from_url(redis_url).llen(names_key(_lane(spool))) == objects
        assert lines, "no progress line"
        found_at_first, rss_at_first = lines[0]
        assert found_at_first < objects * 2 // 3  # most of the walk came after it
        print(f"\nreprocess RSS over {objects} files: {lines}, peak {peak[0]} KiB")
        assert peak[0] - rss_at_first < 4096, f"RSS grew from {rss_at_first} to {peak[0]} KiB"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _lane(spool: Path) -> str:
    (lane,) = [p.name for p in (spool / "ready").iterdir()]
    return lane


def test_an_interrupted_import_exits_130_and_a_rerun_moves_the_rest_once(
    pipeline: Pipeline,
) -> None:
    tree = pipeline.tmp_path / "export"
    objects = _tree(tree, 20, 1000)
    first = subprocess.Popen(
        [
            *(sys.executable, "-m", "pacs_ingest", *_reprocess_args(pipeline)),
            *("--import", str(tree), "--move"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: len(waiting_objects(pipeline.spool)) > 0, 30, "the walk under way")
    first.send_signal(signal.SIGINT)
    summary, _ = first.communicate(timeout=30)
    assert first.returncode == 130
    assert summary.rstrip().endswith("(interrupted)")
    moved = len(waiting_objects(pipeline.spool))
    assert 0 < moved < objects
    second = _reprocess(pipeline, "--import", str(tree), "--move")
    assert second.returncode == 0, second.stderr
    assert f"enqueued {objects - moved}, not DICOM 1, errors 0" in second.stdout
    assert len(waiting_objects(pipeline.spool)) == objects
    assert [p.name for p in tree.rglob("*") if p.is_file()] == ["notes.txt"]
    lane = _lane(pipeline.spool)
    assert Redis.from_url(pipeline.redis_url).llen(names_key(lane)) == objects
