"""Files and folders holding patient data are created 0640/0750 by default, or with --file-mode
and --dir-mode exactly, whatever the umask."""

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis import Redis

from benchmarks.corpus import make_corpus
from pacs_ingest.shared.modes import Modes
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.attempts import Attempts
from tests.conftest import Pipeline
from tests.helpers import ROOT, all_filed, store_all, wait_until

PATTERN = "{PatientID}/{StudyInstanceUID}/{SOPInstanceUID}.dcm"


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    """Children started meanwhile inherit `mask`."""
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


def _modes_below(root: Path) -> tuple[set[int], set[int]]:
    """(file modes, folder modes) of everything below `root`."""
    files, folders = set(), set()
    for path in root.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        (folders if path.is_dir() else files).add(mode)
    return files, folders


def _file_through_up(pipeline: Pipeline, *extra: str) -> None:
    pipeline.up("--receivers", "1", "--workers", "1", "--filepath", PATTERN, *extra)
    objects = make_corpus(pipeline.tmp_path / "corpus", 4, patients=2)
    store_all(objects, pipeline.port)
    wait_until(
        lambda: all_filed(pipeline.archive, pipeline.spool, len(objects)), 60, "every object filed"
    )


def test_spool_and_archive_are_0640_and_0750_by_default_even_under_umask_0(
    pipeline: Pipeline,
) -> None:
    with _umask(0):
        _file_through_up(pipeline)
    assert _modes_below(pipeline.archive) == ({0o640}, {0o750})
    assert stat.S_IMODE(pipeline.archive.stat().st_mode) == 0o750
    spool_files, spool_folders = _modes_below(pipeline.spool)
    assert spool_folders == {0o750}
    assert spool_files <= {0o640}  # nothing may be left, but what is there is 0640


def test_file_mode_and_dir_mode_are_applied_exactly_whatever_the_umask(pipeline: Pipeline) -> None:
    with _umask(0o077):
        _file_through_up(pipeline, "--file-mode", "0660", "--dir-mode", "770")
    assert _modes_below(pipeline.archive) == ({0o660}, {0o770})
    assert _modes_below(pipeline.spool)[1] == {0o770}


def test_failed_reasons_and_attempt_records_get_the_file_mode(
    tmp_path: Path, redis_url: str
) -> None:
    modes = Modes(file_mode=0o600, dir_mode=0o700)
    with _umask(0):
        spool = Spool(tmp_path / "spool", modes)
        spool.create()
        spool.ready_path("x").write_bytes(b"not DICOM")
        attempts = Attempts(Redis.from_url(redis_url), spool, limit=3)
        attempts.failed(attempts.begin("x"), RuntimeError("boom"))
        assert stat.S_IMODE(spool.attempt_path("x").stat().st_mode) == 0o600
        spool.quarantine("x", {"reason": "test"})
    assert stat.S_IMODE((spool.failed / "x.json").stat().st_mode) == 0o600
    assert {stat.S_IMODE(p.stat().st_mode) for p in spool.root.iterdir()} == {0o700}


@pytest.mark.parametrize("value", ["9", "0x1ff", "1000", "4755", "", "rw-r-----"])
def test_a_mode_that_is_not_octal_permissions_exits_2(value: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pacs_ingest", "work", "--redis-url", "redis://127.0.0.1:1/0"),
            *("--allow-directory", "/srv", "--file-mode", value),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "mode" in result.stderr.splitlines()[0]


def test_help_shows_the_default_modes_in_octal() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pacs_ingest", "receive", "-h"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "(default: 0640)" in result.stdout
    assert "(default: 0750)" in result.stdout
