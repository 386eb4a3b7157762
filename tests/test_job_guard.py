"""Workers run only pacs-ingest's job functions, on allowed directories: jobs enqueued straight
into Redis that name anything else are refused, logged, never imported, and filing goes on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.registry import FailedJobRegistry

from benchmarks.corpus import make_corpus
from pacs_ingest.cli import COMMANDS
from pacs_ingest.shared.jobs import DRAIN_FUNCTION, SWEEP_FUNCTION, Filing, OrjsonSerializer
from pacs_ingest.shared.keys import names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.options import parse_args
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.main import WorkerSettings
from tests.conftest import Pipeline
from tests.helpers import ROOT, archive_files, store_all, wait_until, waiting_objects

QUEUE = "pacs-ingest"
# Importing `this` prints the Zen of Python: on the worker's stdout, which is its log.
ZEN = "Beautiful is better than ugly."


def _refused(log_text: str, event: str = "job.refused") -> list[dict]:
    lines = [json.loads(line) for line in log_text.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def test_jobs_naming_other_functions_or_directories_are_refused_and_filing_goes_on(
    pipeline: Pipeline,
) -> None:
    pipeline.receive("--receivers", "1")
    objects = make_corpus(pipeline.tmp_path / "corpus", 6)
    store_all(objects[:3], pipeline.port)  # in ready/, their refs queued: no worker runs yet
    assert len(waiting_objects(pipeline.spool)) == 3
    (lane,) = Spool(pipeline.spool).lanes()
    elsewhere = pipeline.tmp_path.parent / f"{pipeline.tmp_path.name}-elsewhere"
    # A lane record naming another archive, as only someone who can write the spool could make.
    outside = open_lane(Spool(pipeline.spool), Filing(str(elsewhere), None, 0, 0))
    pwned = pipeline.tmp_path / "pwned"
    connection = Redis.from_url(pipeline.redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=OrjsonSerializer)
    spool = str(pipeline.spool)
    hostile = [
        ("os.system", [f"touch {pwned}"], {}),
        ("this.s", [], {}),
        (DRAIN_FUNCTION, [{"spool": str(elsewhere), "lane": lane}], {}),
        (DRAIN_FUNCTION, [{"spool": spool, "lane": outside}], {}),
        (DRAIN_FUNCTION, [{"spool": spool, "lane": "../" + lane}], {}),
        (SWEEP_FUNCTION, [{"spool": str(elsewhere)}], {}),
    ]
    for index, (function, args, kwargs) in enumerate(hostile):
        queue.enqueue_call(function, args=args, kwargs=kwargs, at_front=index % 2 == 0)
    # Refs no receiver writes, pushed beside the real ones: a way out of the lane, and noise.
    connection.rpush(names_key(lane), "../../../" + lane + "/x", "n" * 300)
    work = pipeline.work("--processes", "1")
    wait_until(lambda: len(archive_files(pipeline.archive)) == 3, 60, "the first objects filed")
    wait_until(lambda: len(_refused(work.log())) == len(hostile), 30, "every refusal logged")
    store_all(objects[3:], pipeline.port)
    wait_until(
        lambda: len(archive_files(pipeline.archive)) == 6 and not waiting_objects(pipeline.spool),
        60,
        "the later objects filed",
    )

    reasons = sorted(line["reason"] for line in _refused(work.log()))
    assert reasons == sorted(
        [
            "function 'os.system' is not a pacs-ingest job",
            "function 'this.s' is not a pacs-ingest job",
            f"directory {elsewhere} is outside the allowed directories",
            f"directory {elsewhere} is outside the allowed directories",
            f"directory {elsewhere} is outside the allowed directories",
            f"lane '../{lane}' is not a lane name",
        ]
    ), reasons
    dropped = _refused(work.log(), "drain.ref_refused")
    assert sum(line["refs"] for line in dropped) == 2
    assert not pwned.exists()
    assert ZEN not in work.log()
    assert not elsewhere.exists()
    assert os.listdir(pipeline.spool / "failed") == []
    failed = FailedJobRegistry(QUEUE, connection=queue.connection, serializer=OrjsonSerializer)
    assert len(failed.get_job_ids()) == len(hostile)


def test_a_drain_job_of_the_previous_version_is_still_run(pipeline: Pipeline) -> None:
    """Versions before the single `pacs_ingest` package named the drain `workers.drain.drain_job`:
    such a job, left in the queue by an upgrade, runs as today's drain instead of being refused."""
    pipeline.receive("--receivers", "1")
    store_all(make_corpus(pipeline.tmp_path / "corpus", 3), pipeline.port)
    (lane,) = Spool(pipeline.spool).lanes()
    queue = Queue(QUEUE, connection=Redis.from_url(pipeline.redis_url), serializer=OrjsonSerializer)
    queue.empty()  # today's drain job goes; the previous version's takes its place
    old = queue.enqueue_call(
        "workers.drain.drain_job", args=[{"spool": str(pipeline.spool), "lane": lane}]
    )
    work = pipeline.work("--processes", "1")
    wait_until(lambda: old.get_status(refresh=True) == "finished", 60, "the old job run")
    wait_until(lambda: len(archive_files(pipeline.archive)) == 3, 60, "every object filed")
    assert not _refused(work.log())


def test_work_without_allowed_directories_does_not_start(redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PACS_INGEST_ALLOW_DIRECTORY"}
    result = subprocess.run(
        [sys.executable, "-m", "pacs_ingest", "work", "--redis-url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert "missing --allow-directory" in result.stderr


def test_allowed_directories_come_from_the_command_line_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    work_rows = COMMANDS["work"].rows
    given = parse_args(work_rows, ["--redis-url", "r", "--allow-directory", str(a), str(b)])
    assert WorkerSettings.from_args(given, 1).policy.allowed_directories == (a, b)
    monkeypatch.setenv("PACS_INGEST_ALLOW_DIRECTORY", f"{a} {b}")
    from_env = parse_args(work_rows, ["--redis-url", "r"])
    assert WorkerSettings.from_args(from_env, 1).policy.allowed_directories == (a, b)


def test_up_always_allows_its_own_spool_and_archive(tmp_path: Path) -> None:
    spool, archive, other = tmp_path / "spool", tmp_path / "archive", tmp_path / "import"
    args = parse_args(
        COMMANDS["up"].rows,
        [
            *("-b", "104", "--spool-dir", str(spool), "--directory", str(archive)),
            *("--allow-directory", str(other)),
        ],
    )
    policy = WorkerSettings.from_args(args, 1, (args.directory, args.spool_dir)).policy
    assert policy.allowed_directories == (archive, spool, other)
    assert policy.allows(str(archive / "x")) and not policy.allows(str(tmp_path))
