"""Moving an object into the archive: replace, retry with jittered pauses, give up cleanly."""

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pacs_ingest.shared.filing import DEFAULT_DUPLICATES, Filing
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.ingest import StorageUnavailable, file_object
from pacs_ingest.workers.place import SourceGone, place, retry_pause
from tests.header_bytes import Encoder


def _filing(
    root: Path, retries: int = 3, jitter: int = 50, duplicates: str = DEFAULT_DUPLICATES
) -> Filing:
    return Filing(
        directory=str(root),
        filepath=None,
        rename_retries=retries,
        rename_retry_jitter=jitter,
        duplicates=duplicates,
    )


def _retries() -> float:
    return REGISTRY.get_sample_value("pacs_ingest_rename_retries_total") or 0.0


def test_an_object_moves_into_new_folders_and_replaces_an_older_copy_under_overwrite(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    target = root / "a" / "b" / "object.dcm"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    source = tmp_path / "ready.dcm"
    source.write_bytes(b"new")
    filing = _filing(root, duplicates="overwrite")
    assert place(source, target, filing, rng=random.Random(1)).attempts == 1
    assert target.read_bytes() == b"new"
    assert not source.exists()


def test_a_blocked_target_is_retried_with_bounded_pauses_then_fails(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "object.dcm" / "occupied").mkdir(parents=True)  # a non-empty directory in the way
    source = tmp_path / "ready.dcm"
    source.write_bytes(b"data")
    pauses: list[float] = []
    retries_before = _retries()
    with pytest.raises(OSError):
        place(
            source,
            root / "object.dcm",
            _filing(root, retries=3, jitter=50),
            rng=random.Random(1),
            sleep=pauses.append,
        )
    assert len(pauses) == 3
    assert _retries() - retries_before == 3  # counted though the last failed
    assert all(0 <= pause < 0.050 for pause in pauses)
    assert source.read_bytes() == b"data"


def test_no_retries_means_one_attempt(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "x" / "y").mkdir(parents=True)
    source = tmp_path / "ready.dcm"
    source.write_bytes(b"data")
    pauses: list[float] = []
    with pytest.raises(OSError):
        place(
            source, root / "x", _filing(root, retries=0), rng=random.Random(), sleep=pauses.append
        )
    assert pauses == []


def test_a_missing_archive_root_leaves_the_object_waiting_without_retries(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    enc = Encoder()
    spool.ready_path("obj").write_bytes(enc.part10(enc.text(0x00080018, "UI", "1.2.3.4")))
    root = tmp_path / "archive"  # not there: an archive not mounted
    retries_before = _retries()
    with pytest.raises(StorageUnavailable, match="is not a directory"):
        file_object(spool, "obj", _filing(root, retries=3, jitter=50), random.Random(1))
    assert spool.ready_path("obj").exists()
    assert not root.exists()
    assert not any(spool.failed.iterdir())
    assert _retries() == retries_before


def test_a_missing_source_means_someone_else_filed_it(tmp_path: Path) -> None:
    with pytest.raises(SourceGone):
        place(tmp_path / "gone.dcm", tmp_path / "t.dcm", _filing(tmp_path), rng=random.Random())


def test_jitter_is_whole_milliseconds_below_the_bound() -> None:
    rng = random.Random(3)
    pauses = {retry_pause(rng, 5) for _ in range(1000)}
    assert pauses == {0.0, 0.001, 0.002, 0.003, 0.004}
    assert retry_pause(rng, 0) == 0.0


def test_across_file_systems_the_object_is_copied_then_the_spool_copy_removed(
    tmp_path: Path,
) -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        source = Path(other, "ready.dcm")
        source.write_bytes(b"x" * 100_000)
        assert os.stat(other).st_dev != os.stat(tmp_path).st_dev, "needs two file systems"
        target = tmp_path / "archive" / "p" / "object.dcm"
        (tmp_path / "archive").mkdir()
        place(source, target, _filing(tmp_path / "archive"), rng=random.Random())
        assert target.read_bytes() == b"x" * 100_000
        assert not source.exists()
        assert [p.name for p in target.parent.iterdir()] == ["object.dcm"]


_BATCH_SCRIPT = """
import random, sys
from pathlib import Path
from pacs_ingest.shared.filing import Filing
from pacs_ingest.workers.place import Settlement, place
spool, root = Path(sys.argv[1]), Path(sys.argv[2])
filing = Filing(str(root), None, 0, 0)
settlement = Settlement()
for source in sorted(spool.iterdir()):
    place(source, root / "patient" / "series" / source.name, filing, rng=random.Random(),
          settlement=settlement)
    assert source.exists()  # removed only once the batch is durable
settlement.finish()
"""


def test_a_batch_fsyncs_each_changed_folder_once_before_removing_any_spool_copy(
    tmp_path: Path,
) -> None:
    spool, root = tmp_path / "ready", tmp_path / "archive"
    spool.mkdir()
    root.mkdir()
    for i in range(10):
        (spool / f"{i}.dcm").write_bytes(b"object %d" % i)
    trace = tmp_path / "trace"
    subprocess.run(
        [
            "strace",
            "-f",
            "-y",
            "-e",
            "trace=fsync,unlink,unlinkat",
            "-o",
            str(trace),
            sys.executable,
            "-c",
            _BATCH_SCRIPT,
            str(spool),
            str(root),
        ],
        check=True,
    )
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines() if "= " in line]
    fsyncs = [call for call in calls if call.startswith("fsync(")]
    unlinks = [i for i, call in enumerate(calls) if call.startswith("unlink") and "ready" in call]
    synced = sorted(call[call.index("<") + 1 : call.index(">")] for call in fsyncs)
    assert synced == sorted([str(root), str(root / "patient"), str(root / "patient" / "series")])
    assert len(unlinks) == 10
    assert max(calls.index(call) for call in fsyncs) < min(unlinks)
    assert sorted(p.name for p in (root / "patient" / "series").iterdir()) == sorted(
        f"{i}.dcm" for i in range(10)
    )
    assert not any(spool.iterdir())
