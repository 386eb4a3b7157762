"""Full disks, made on purpose with small tmpfs mounts: nothing acknowledged is ever lost."""

import subprocess
from pathlib import Path

from pynetdicom import AE

from benchmarks.corpus import make_corpus
from tests.conftest import Pipeline
from tests.helpers import archive_files, resize_tmpfs, tmpfs, wait_until, waiting_objects

OUT_OF_RESOURCES = 0xA700


def _send_each(paths: list[Path], port: int) -> list[tuple[int, str]]:
    """(status, error comment) of one C-STORE per file, over one pynetdicom association."""
    ae = AE(ae_title="FILLER")
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="INGEST")
    assert assoc.is_established
    try:
        results = []
        for path in paths:
            rsp = assoc.send_c_store(path)
            results.append((int(rsp.Status), str(rsp.get("ErrorComment", ""))))
        return results
    finally:
        assoc.release()


def _echo(port: int) -> int:
    return subprocess.run(
        ["echoscu", "-aec", "INGEST", "127.0.0.1", str(port)], capture_output=True, timeout=30
    ).returncode


def test_a_full_spool_answers_out_of_resources_and_keeps_serving(pipeline: Pipeline) -> None:
    objects = make_corpus(pipeline.tmp_path / "corpus", 6, size=300_000)
    with tmpfs(pipeline.spool, "1m"):
        # No workers: nothing drains the spool. No free-space watermark: the point is what
        # happens when a store meets a full disk (test_back_pressure covers the watermark).
        pipeline.receive("--min-free-space", "0")
        results = _send_each(objects, pipeline.port)
        stored = [r for r in results if r[0] == 0]
        refused = [r for r in results if r[0] != 0]
        assert stored and refused
        assert {status for status, _ in refused} == {OUT_OF_RESOURCES}
        assert all("No space left on device" in comment for _, comment in refused)
        assert _echo(pipeline.port) == 0
        ready = waiting_objects(pipeline.spool)
        assert len(ready) == len(stored)
        assert not [p for p in (pipeline.spool / "incoming").rglob("*") if p.is_file()]

        pipeline.work()
        wait_until(lambda: not waiting_objects(pipeline.spool), 30, "the spool drained")
        retried = [objects[i] for i, r in enumerate(results) if r[0] != 0]
        assert [status for status, _ in _send_each(retried, pipeline.port)] == [0] * len(retried)
        wait_until(lambda: len(archive_files(pipeline.archive)) == len(objects), 30, "all filed")


def test_a_full_archive_keeps_objects_in_the_spool_until_there_is_room(
    pipeline: Pipeline,
) -> None:
    objects = make_corpus(pipeline.tmp_path / "corpus", 8, size=250_000)
    with tmpfs(pipeline.archive, "1m"):
        pipeline.up(sweep_interval=1)  # recovery asks for a drain once the hold ends
        assert [status for status, _ in _send_each(objects, pipeline.port)] == [0] * 8
        wait_until(
            lambda: (
                0 < len(archive_files(pipeline.archive)) < 8
                and "ingest.storage_unavailable" in pipeline.commands[0].log()
            ),
            30,
            "the archive to fill up",
        )
        # The hold is logged before the round that hit the full archive settles (removes the
        # spool copies of what it placed): wait for that, not for a moment in between.
        wait_until(
            lambda: (
                len(waiting_objects(pipeline.spool)) == 8 - len(archive_files(pipeline.archive))
            ),
            10,
            "each object in exactly one of ready/ and the archive",
        )
        assert not any((pipeline.spool / "failed").iterdir())

        resize_tmpfs(pipeline.archive, "20m")
        # Filed means: out of ready/ too (a file counted in the archive may be a scratch copy).
        wait_until(
            lambda: (
                len(archive_files(pipeline.archive)) == 8 and not waiting_objects(pipeline.spool)
            ),
            90,
            "all 8 filed",
        )
        assert not any((pipeline.spool / "failed").iterdir())
        assert all(p.stat().st_size > 250_000 * 0.9 for p in archive_files(pipeline.archive))


def _fill(folder: Path) -> None:
    """A file in `folder` that takes every byte its file system has left."""
    filler = folder / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_spool_does_not_stop_its_objects_from_being_filed(pipeline: Pipeline) -> None:
    """A first attempt's mark is a link, which takes no room: a full spool still drains."""
    objects = make_corpus(pipeline.tmp_path / "corpus", 4)
    with tmpfs(pipeline.spool, "2m"):
        pipeline.receive("--receivers", "1", "--min-free-space", "0")
        assert [status for status, _ in _send_each(objects, pipeline.port)] == [0] * 4
        _fill(pipeline.spool)
        work = pipeline.work("--processes", "1", "--max-attempts", "1")
        wait_until(
            lambda: (
                len(archive_files(pipeline.archive)) == 4 and not waiting_objects(pipeline.spool)
            ),
            60,
            "all 4 filed from the full spool",
        )
        assert "ingest.storage_unavailable" not in work.log()
        assert not any((pipeline.spool / "failed").iterdir())
        assert not any((pipeline.spool / "attempts").iterdir())
