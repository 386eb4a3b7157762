"""A drain settles what several claims filed together: each archive folder that gained entries
is fsynced once per settlement, not once per claim, because many senders at once interleave
their series and every claim then touches nearly every folder (workers.drain)."""

import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from benchmarks.corpus import make_corpus
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.modes import DEFAULT_MODES
from pacs_ingest.shared.spool import Spool, new_name
from pacs_ingest.workers import drain, place, policy
from tests.helpers import all_filed

SERIES = 8
PER_SERIES = 16  # 128 objects: two full claims of drain.BATCH
PATTERN = "{0020000E}/{00080018}.dcm"


def _spool_interleaved(tmp_path: Path, connection: Redis) -> tuple[Spool, str, Path]:
    """128 objects of 8 series in ready/, queued one of each series in turn, as 8 senders of one
    series each would leave them."""
    spool = Spool(str(tmp_path / "spool"))
    spool.create()
    archive = tmp_path / "archive"
    archive.mkdir()
    lane = open_lane(spool, Filing(str(archive), PATTERN, 0, 0))
    corpus = make_corpus(tmp_path / "corpus", SERIES * PER_SERIES, per_series=PER_SERIES)
    interleaved = [corpus[s * PER_SERIES + k] for k in range(PER_SERIES) for s in range(SERIES)]
    refs = []
    for path in interleaved:
        name = new_name()
        shutil.copyfile(path, spool.part_path(name))
        refs.append(spool.make_ready(name, lane, now=time.time()))
    spool.sync_ready(refs)
    connection.rpush(names_key(lane), *(ref.partition("/")[2] for ref in refs))
    return spool, lane, archive


def _series_fsyncs(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Counter[Path]:
    """Drain the interleaved lane as a helper does (until a claim is not full); how many times
    each series folder was fsynced."""
    connection = Redis.from_url(redis_url)
    spool, lane, archive = _spool_interleaved(tmp_path, connection)
    monkeypatch.setattr(
        policy, "_installed", policy.WorkerPolicy.of((str(tmp_path),), DEFAULT_MODES, 3)
    )
    fsyncs: Counter[Path] = Counter()
    real_fsync_dir = place.fsync_dir

    def fsync_dir(path: Path | str) -> None:
        fsyncs[Path(path)] += 1
        real_fsync_dir(path)

    monkeypatch.setattr(place, "fsync_dir", fsync_dir)
    handled, more = drain._drain_batches(
        Queue("settle-test", connection=connection),
        DrainJob(str(spool.root), lane),
        "settle-test-worker",
        lane_drain=False,
    )
    assert (handled, more) == (SERIES * PER_SERIES, True)
    # Every object filed, and every spool copy removed once its batch was settled.
    assert all_filed(archive, spool.root, SERIES * PER_SERIES)
    series = Counter({path: count for path, count in fsyncs.items() if path.parent == archive})
    assert len(series) == SERIES
    return series


def test_the_claims_of_a_drain_share_one_fsync_per_folder(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain, "SETTLE_S", 60.0)  # only the size bound, or an empty lane, settles
    fsyncs = _series_fsyncs(tmp_path, redis_url, monkeypatch)
    # Both claims of 64 touched all eight folders; settled together, each was fsynced once.
    assert set(fsyncs.values()) == {1}, fsyncs


def test_a_batch_is_settled_once_it_holds_settle_max_objects(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain, "SETTLE_S", 60.0)
    monkeypatch.setattr(drain, "SETTLE_MAX", drain.BATCH)
    fsyncs = _series_fsyncs(tmp_path, redis_url, monkeypatch)
    assert set(fsyncs.values()) == {2}, fsyncs
