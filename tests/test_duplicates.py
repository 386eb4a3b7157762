"""--duplicates: each policy, for objects filed one after the other and at the same moment."""

import random
import shutil
import threading
from pathlib import Path

import pytest

from benchmarks.corpus import make_corpus
from pacs_ingest.shared import part10
from pacs_ingest.shared.filing import Filing
from pacs_ingest.workers.duplicates import DuplicateDiffers, dataset_digest
from pacs_ingest.workers.place import place
from tests.conftest import Pipeline
from tests.helpers import archive_files, corpus_file, pynetdicom_send, wait_until, waiting_objects

SOP_INSTANCE_UID = "1.2.826.0.1.3680043.8.498.1"


def _versions(folder: Path, count: int) -> list[Path]:
    """`count` objects with the same SOP Instance UID and different content."""

    def same_uid(ds, index: int) -> None:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = SOP_INSTANCE_UID
        ds.ImageComments = f"version {index}"

    return make_corpus(folder, count, size=20_000, customise=same_uid)


def _spooled(source: Path, spool: Path, meta_variant: bytes = b"") -> Path:
    """A copy of `source` as a spool file; `meta_variant` changes the file meta only."""
    spool.mkdir(exist_ok=True)
    copy = spool / f"{len(list(spool.iterdir()))}.dcm"
    data = source.read_bytes()
    if meta_variant:
        with open(source, "rb") as fp:
            meta = part10.read_file_meta(fp)
        header = part10.encode_header(
            sop_class_uid=meta.media_storage_sop_class_uid,
            sop_instance_uid=meta.media_storage_sop_instance_uid,
            transfer_syntax_uid=meta.transfer_syntax_uid,
            implementation_class_uid="1.2.3",
            implementation_version_name="OTHER_SENDER",
            source_ae_title=meta_variant.decode(),
        )
        data = header + data[meta.dataset_offset :]
    copy.write_bytes(data)
    return copy


def _filing(root: Path, policy: str) -> Filing:
    return Filing(str(root), None, rename_retries=3, rename_retry_jitter=5, duplicates=policy)


@pytest.fixture
def versions(tmp_path: Path) -> list[Path]:
    return _versions(tmp_path / "versions", 8)


def _file(source: Path, root: Path, policy: str):
    target = root / SOP_INSTANCE_UID
    root.mkdir(exist_ok=True)
    return place(source, target, _filing(root, policy), rng=random.Random())


def test_overwrite_replaces_the_archived_object(tmp_path: Path, versions: list[Path]) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    assert _file(_spooled(versions[0], spool), root, "overwrite").outcome == "filed"
    placed = _file(_spooled(versions[1], spool), root, "overwrite")
    assert placed.outcome == "overwritten"
    assert archive_files(root) == [root / SOP_INSTANCE_UID]
    assert dataset_digest(root / SOP_INSTANCE_UID) == dataset_digest(versions[1])


def test_keep_existing_drops_the_newcomer(tmp_path: Path, versions: list[Path]) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    _file(_spooled(versions[0], spool), root, "keep-existing")
    newcomer = _spooled(versions[1], spool)
    assert _file(newcomer, root, "keep-existing").outcome == "duplicate"
    assert not newcomer.exists()
    assert archive_files(root) == [root / SOP_INSTANCE_UID]
    assert dataset_digest(root / SOP_INSTANCE_UID) == dataset_digest(versions[0])


def test_keep_both_files_a_different_object_beside_and_drops_an_identical_one(
    tmp_path: Path, versions: list[Path]
) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    _file(_spooled(versions[0], spool), root, "keep-both")
    other = _file(_spooled(versions[1], spool), root, "keep-both")
    assert other.outcome == "filed"
    assert other.path.name.startswith(SOP_INSTANCE_UID + "~")
    again = _file(_spooled(versions[1], spool, meta_variant=b"SECOND_PEER"), root, "keep-both")
    assert again.outcome == "duplicate"
    identical = _file(_spooled(versions[0], spool), root, "keep-both")
    assert identical.outcome == "duplicate"
    assert sorted(dataset_digest(p) for p in archive_files(root)) == sorted(
        dataset_digest(v) for v in versions[:2]
    )


def test_keep_both_keeps_an_object_beside_a_file_that_is_no_dicom(
    tmp_path: Path, versions: list[Path]
) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    root.mkdir()
    (root / SOP_INSTANCE_UID).write_bytes(b"notes someone left in the archive")
    placed = _file(_spooled(versions[0], spool), root, "keep-both")
    assert placed.outcome == "filed"
    assert placed.path.name.startswith(SOP_INSTANCE_UID + "~")
    assert (root / SOP_INSTANCE_UID).read_bytes() == b"notes someone left in the archive"


def test_quarantine_if_different_refuses_other_content_and_drops_the_same(
    tmp_path: Path, versions: list[Path]
) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    _file(_spooled(versions[0], spool), root, "quarantine-if-different")
    same = _spooled(versions[0], spool, meta_variant=b"SECOND_PEER")
    assert _file(same, root, "quarantine-if-different").outcome == "duplicate"
    different = _spooled(versions[1], spool)
    with pytest.raises(DuplicateDiffers):
        _file(different, root, "quarantine-if-different")
    assert different.exists()
    assert dataset_digest(root / SOP_INSTANCE_UID) == dataset_digest(versions[0])


@pytest.mark.parametrize(
    ("policy", "archived"),
    [("overwrite", 1), ("keep-existing", 1), ("keep-both", 8), ("quarantine-if-different", 1)],
)
def test_concurrent_duplicates_leave_whole_files_only(
    tmp_path: Path, versions: list[Path], policy: str, archived: int
) -> None:
    spool, root = tmp_path / "spool", tmp_path / "archive"
    sources = [_spooled(v, spool) for v in versions]
    start = threading.Barrier(len(sources))
    outcomes: list[str] = []

    def file_one(source: Path) -> None:
        start.wait()
        try:
            outcomes.append(_file(source, root, policy).outcome)
        except DuplicateDiffers:
            outcomes.append("quarantine")

    threads = [threading.Thread(target=file_one, args=(s,)) for s in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    filed = archive_files(root)
    assert len(filed) == archived, filed
    digests = {dataset_digest(v) for v in versions}
    assert all(dataset_digest(p) in digests for p in filed)  # whole objects, never partial
    assert outcomes.count("filed") == archived
    if policy == "overwrite":  # each one after the first replaced the last, and says so
        assert outcomes.count("overwritten") == len(versions) - 1


def test_the_pipeline_quarantines_a_different_duplicate_with_its_reason(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    sources = _versions(tmp_path / "two", 2)
    pipeline.up("--duplicates", "quarantine-if-different")
    for source in sources:  # one after the other
        assert pynetdicom_send([corpus_file(source)], pipeline.port, "INGEST") == {source: 0}
        wait_until(lambda: not waiting_objects(pipeline.spool), 30, "filing")
    assert [p.name for p in archive_files(pipeline.archive)] == [SOP_INSTANCE_UID]
    failed = sorted(p.suffix for p in (pipeline.spool / "failed").iterdir())
    assert failed == [".dcm", ".json"]
    reason = next((pipeline.spool / "failed").glob("*.json")).read_text()
    assert "duplicate differs" in reason
    shutil.rmtree(pipeline.spool / "failed")


def test_by_default_a_different_object_is_kept_beside_and_an_identical_one_dropped(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    first, second = _versions(tmp_path / "two", 2)
    pipeline.up()  # no --duplicates: keep-both
    for source in (first, second, first):  # one after the other, the first one twice
        assert pynetdicom_send([corpus_file(source)], pipeline.port, "INGEST") == {source: 0}
        wait_until(lambda: not waiting_objects(pipeline.spool), 30, "filing")
    filed = archive_files(pipeline.archive)
    assert sorted(p.name.split("~")[0] for p in filed) == [SOP_INSTANCE_UID] * 2
    assert sorted(dataset_digest(p) for p in filed) == sorted(map(dataset_digest, (first, second)))
    assert not any((pipeline.spool / "failed").iterdir())
