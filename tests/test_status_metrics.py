"""`pacs-ingest status` and /metrics during a live run: real storescu, Redis and processes."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from redis import Redis

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import RedisServer, free_port, server_binary
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.heartbeat import HEARTBEAT_TTL_S
from pacs_ingest.shared.keys import HEARTBEATS_KEY, names_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import BUCKET_S, ReadyObject, Spool, bucket_at
from pacs_ingest.shared.spool_counts import (
    count_leaving,
    count_ready,
    forget_bucket,
    read_counts,
    recount_bucket,
    recount_failed,
)
from pacs_ingest.workers.recovery import UNQUEUED_GRACE_S, sweep
from tests.conftest import Pipeline
from tests.helpers import ROOT, started_processes, wait_for_port, wait_until, waiting_objects
from tests.receivers import run_pacs_ingest

SENDER = "MODALITY1"
OBJECTS = 20
UNDATED = 3  # of them have an empty StudyDate: the pattern's date shift sends them to failed/
PATTERN = "{StudyDate,date-P1D,yyyyMMdd}/{SOPInstanceUID}.dcm"


def status(pipeline: Pipeline, *extra: str) -> subprocess.CompletedProcess:
    return run_pacs_ingest(
        *("status", "--spool-dir", str(pipeline.spool), "--redis-url", pipeline.redis_url),
        *extra,
        timeout=30,
    )


def status_json(pipeline: Pipeline) -> tuple[int, dict]:
    result = status(pipeline, "--json")
    assert result.stdout.count("\n") == 1, result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def scrape(port: int) -> dict[str, float]:
    """Every sample of /metrics, keyed by name with its labels as written."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def storescu(pipeline: Pipeline, folder: Path, *, called: str = "INGEST") -> None:
    subprocess.run(
        [
            "storescu",
            "-aet",
            SENDER,
            "-aec",
            called,
            "127.0.0.1",
            str(pipeline.port),
            "+sd",
            str(folder),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def ready_bytes(pipeline: Pipeline) -> int:
    return sum(p.stat().st_size for p in waiting_objects(pipeline.spool))


def test_status_and_metrics_follow_a_live_run(pipeline: Pipeline, tmp_path: Path) -> None:
    receive_metrics, work_metrics = free_port(), free_port()
    pipeline.receive(
        *("--metrics-port", f"127.0.0.1:{receive_metrics}", "--receivers", "1"),
        *("--filepath", PATTERN),
    )
    wait_until(lambda: status_json(pipeline)[1]["receivers"], 20, "the receiver's heartbeat")

    def undate(ds: Dataset, index: int) -> None:
        ds.StudyDate = "" if index < UNDATED else "20240229"

    corpus = make_corpus(tmp_path / "corpus", OBJECTS, customise=undate)

    # Workers stopped: the backlog and its age are what was sent.
    sent_from = time.time()
    storescu(pipeline, tmp_path / "corpus")
    sent_until = time.time()
    code, report = status_json(pipeline)
    waited = time.time()
    assert code == 5, report  # no live worker
    assert [p["name"] for p in report["problems"]] == ["no-worker"]
    assert report["ready"]["objects"] == OBJECTS
    assert report["ready"]["bytes"] == ready_bytes(pipeline)
    assert report["ready"]["bytes"] > sum(p.stat().st_size for p in corpus) * 0.9
    age = report["ready"]["oldest_unfiled_age_s"]
    assert waited - sent_until - 0.1 <= age <= waited - sent_from + 0.1
    assert report["queue"]["depth"] == OBJECTS  # refs waiting in the lane
    assert report["workers"] == []
    assert len(report["receivers"]) == 1
    assert report["filed_last_minute"] == 0
    assert report["redis"]["reachable"] is True
    assert [archive["path"] for archive in report["archives"]] == [str(pipeline.archive)]
    assert report["spool_free_bytes"] > 0

    table = status(pipeline)
    assert table.returncode == 5
    assert f"{OBJECTS} objects" in table.stdout
    assert "UNHEALTHY (exit 5): no live worker" in table.stdout

    subprocess.run(
        ["echoscu", "-aec", "SOMEONE", "127.0.0.1", str(pipeline.port)], capture_output=True
    )
    received = scrape(receive_metrics)
    assert received[f'pacs_ingest_received_objects_total{{calling_ae="{SENDER}"}}'] == OBJECTS
    assert received[f'pacs_ingest_associations_accepted_total{{calling_ae="{SENDER}"}}'] == 1
    rejected = 'pacs_ingest_associations_rejected_total{reason="called-ae-title-not-recognized"}'
    assert received[rejected] == 1
    assert received['pacs_ingest_store_latency_seconds_count{until="durable"}'] == OBJECTS
    assert received['pacs_ingest_store_latency_seconds_count{until="answered"}'] == OBJECTS
    spool_label = f'{{spool="{pipeline.spool}"}}'
    assert received[f"pacs_ingest_ready_objects{spool_label}"] == OBJECTS
    assert received[f"pacs_ingest_oldest_unfiled_age_seconds{spool_label}"] >= age
    assert received['pacs_ingest_queue_depth{queue="pacs-ingest"}'] == OBJECTS
    assert received["pacs_ingest_redis_up"] == 1

    # Workers started: the backlog drains and the filed counters move.
    pipeline.work("--metrics-port", f"127.0.0.1:{work_metrics}", "--processes", "1")
    wait_until(lambda: status_json(pipeline)[0] == 0, 60, "a healthy pipeline")
    code, report = status_json(pipeline)
    assert report["ready"] == {"objects": 0, "bytes": 0, "oldest_unfiled_age_s": None}
    assert report["filed_last_minute"] == OBJECTS - UNDATED
    failed = list((pipeline.spool / "failed").glob("*.dcm"))
    assert len(failed) == UNDATED
    assert report["failed"] == {"objects": UNDATED, "bytes": sum(p.stat().st_size for p in failed)}
    assert len(report["workers"]) == 1
    assert len(list(pipeline.archive.rglob("*.dcm"))) == OBJECTS - UNDATED
    worked = scrape(work_metrics)
    assert worked['pacs_ingest_filed_objects_total{outcome="filed"}'] == OBJECTS - UNDATED
    assert worked['pacs_ingest_quarantined_objects_total{reason="cannot render"}'] == UNDATED
    assert worked["pacs_ingest_filing_latency_seconds_count"] == OBJECTS - UNDATED
    assert worked[f"pacs_ingest_spool_failed_objects{spool_label}"] == UNDATED

    # Reprocessed with a pattern they can take, failed/ empties and they count as filed.
    subprocess.run(
        [
            *(sys.executable, "-m", "pacs_ingest", "reprocess", "--failed"),
            *("--spool-dir", str(pipeline.spool), "--directory", str(pipeline.archive)),
            *("--filepath", "{SOPInstanceUID}.dcm", "--redis-url", pipeline.redis_url),
        ],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    wait_until(lambda: status_json(pipeline)[1]["filed_last_minute"] == OBJECTS, 60, "all filed")
    report = status_json(pipeline)[1]
    assert report["failed"] == {"objects": 0, "bytes": 0}
    assert report["ready"]["objects"] == 0
    assert worked[f"pacs_ingest_ready_objects{spool_label}"] == 0
    assert worked['pacs_ingest_live_workers{queue="pacs-ingest"}'] == 1


def test_status_exits_3_while_redis_is_stopped(tmp_path: Path, port: int) -> None:
    server = RedisServer(server_binary(), tmp_path / "redis", persistent=False)
    url = server.start()
    pipeline = Pipeline(tmp_path, url, port)
    metrics = free_port()
    try:
        pipeline.receive("--receivers", "1", "--metrics-port", f"127.0.0.1:{metrics}")
        pipeline.work("--processes", "1")
        wait_until(lambda: status(pipeline).returncode == 0, 30, "a healthy pipeline")
        assert scrape(metrics)["pacs_ingest_redis_up"] == 1
        server.stop()
        samples = scrape(metrics)  # still served, saying so
        assert samples["pacs_ingest_redis_up"] == 0
        assert samples[f'pacs_ingest_spool_free_bytes{{spool="{pipeline.spool}"}}'] > 0
        down = status(pipeline, "--json")
        report = json.loads(down.stdout)
        assert down.returncode == 3, down.stdout
        assert report["redis"]["reachable"] is False
        assert report["problems"][0]["name"] == "redis-unreachable"
        assert report["spool_free_bytes"] > 0  # what the file systems say is still said
        table = status(pipeline)
        assert table.returncode == 3
        assert "UNREACHABLE" in table.stdout
    finally:
        pipeline.stop_all()
        server.stop()


def test_status_reads_neither_the_spool_backlog_nor_the_queue(
    pipeline: Pipeline, redis_url: str
) -> None:
    """A backlog of 20,000 objects in a lane's bucket, their 20,000 refs queued: status answers
    fast, listing neither (it lists ready/ for its lanes, never a bucket)."""
    spool = Spool(pipeline.spool)
    spool.create()
    lane = open_lane(spool, Filing(str(pipeline.archive), None, 3, 50))
    bucket = pipeline.spool / "ready" / lane / bucket_at(time.time())
    bucket.mkdir()
    for index in range(20_000):
        (bucket / f"{index:032x}.dcm").write_bytes(b"x")
    connection = Redis.from_url(redis_url)
    connection.rpush(names_key(lane), *(f"{bucket.name}/{i:032x}" for i in range(20_000)))
    connection.config_resetstat()
    trace = pipeline.tmp_path / "status.strace"
    started = time.monotonic()
    result = subprocess.run(
        [
            "strace",
            "-f",
            # Only the traced calls stop the process: on some machines stopping at every call
            # makes Python's start alone take seconds.
            "--seccomp-bpf",
            "-qq",
            "-e",
            "trace=openat,open",
            "-o",
            str(trace),
            sys.executable,
            "-m",
            "pacs_ingest",
            "status",
            "--spool-dir",
            str(pipeline.spool),
            "--redis-url",
            redis_url,
            "--json",
            "--expect",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    report = json.loads(result.stdout)
    assert report["queue"]["depth"] == 20_000
    assert str(bucket) not in trace.read_text()
    commands = {
        name.removeprefix("cmdstat_").partition("|")[0]
        for name in connection.info("commandstats")
        if name.startswith("cmdstat_")
    }
    reads = {"smembers", "hgetall", "mget", "hget", "llen", "zcard"}
    assert commands <= {"client", "config", "hello", "ping", *reads}, commands
    assert elapsed < 5, elapsed  # under strace, with Python's start-up; the reading itself:
    untraced = time.monotonic()
    status(pipeline, "--expect", "none")
    assert time.monotonic() - untraced < 2


def _objects(lane: str, count: int, mtime: float) -> list[ReadyObject]:
    bucket = bucket_at(mtime)
    return [ReadyObject(f"{lane}/{bucket}/{i}", mtime + i * 0.001, 100) for i in range(count)]


def test_recovery_recounts_the_buckets_it_lists_and_drops_those_it_removes(
    redis_url: str,
) -> None:
    connection = Redis.from_url(redis_url)
    now = time.time()
    old, recent = _objects("lane", 5, now - 10 * BUCKET_S), _objects("lane", 2, now)
    with connection.pipeline() as pipe:
        count_ready(pipe, "/spool", old + recent)
        pipe.execute()
    counts = read_counts(connection, "/spool", now=now)
    assert (counts.ready_objects, counts.ready_bytes) == (7, 700)
    assert counts.oldest_ready_at == pytest.approx(old[0].mtime)
    assert counts.counted_at is None
    # One old object is filed and one quarantined: counted out, failed/ counted in.
    with connection.pipeline() as pipe:
        count_leaving(pipe, "/spool", old[:1], old[1:2], now=now)
        pipe.execute()
    counts = read_counts(connection, "/spool", now=now)
    assert (counts.ready_objects, counts.failed_objects, counts.filed_last_minute) == (5, 1, 1)
    # A listing of the old bucket finds two objects (a worker was killed between filing one and
    # counting it out): the listing wins; failed/ is recounted from its own listing.
    bucket = old[0].ref.split("/")[1]
    listed = old[3:]
    tally = ([item.ref for item in listed], len(listed) * 100, listed[0].mtime)
    recount_bucket(connection, "/spool", "lane", bucket, tally)
    recount_failed(connection, "/spool", (4, 400), now=now)
    counts = read_counts(connection, "/spool", now=now)
    assert (counts.ready_objects, counts.ready_bytes) == (4, 400)
    assert counts.oldest_ready_at == pytest.approx(old[3].mtime)
    assert (counts.failed_objects, counts.failed_bytes) == (4, 400)
    assert counts.counted_at == pytest.approx(now)
    # The bucket emptied and recovery removed it: its counts go, whatever skew they had.
    forget_bucket(connection, "/spool", "lane", bucket)
    counts = read_counts(connection, "/spool", now=now)
    assert (counts.ready_objects, counts.ready_bytes) == (2, 200)
    assert counts.oldest_ready_at == pytest.approx(recent[0].mtime)


def test_a_metrics_port_in_use_stops_the_command_with_exit_2(redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = run_pacs_ingest(
            *("work", "--redis-url", redis_url, "--metrics-port", f"127.0.0.1:{busy}"),
            *("--allow-directory", "/srv"),
            timeout=30,
        )
    assert result.returncode == 2
    assert re.search(rf"cannot serve metrics on 127\.0\.0\.1:{busy}: ", result.stderr)


@pytest.mark.parametrize("value", ["0", "70000", "host:", "nine"])
def test_a_bad_metrics_port_exits_2(value: str, redis_url: str) -> None:
    result = run_pacs_ingest("work", "--redis-url", redis_url, "--metrics-port", value, timeout=30)
    assert result.returncode == 2
    assert "invalid metrics port" in result.stderr


def _pids(report: dict, role: str) -> set[int]:
    return {process["pid"] for process in report[role]}


def test_a_killed_worker_leaves_status_and_its_replacement_joins(pipeline: Pipeline) -> None:
    pipeline.spool.mkdir()  # as mounted on a worker host
    work = pipeline.work("--processes", "1")
    wait_until(lambda: status_json(pipeline)[1]["workers"], 20, "the worker's heartbeat")
    [(_, first)] = started_processes(work.log())
    assert _pids(status_json(pipeline)[1], "workers") == {first}
    os.kill(first, signal.SIGKILL)  # its parent restarts it; the dead one's key must expire
    wait_until(
        lambda: len(started_processes(work.log())) == 2, 20, "the replacement worker to start"
    )
    second = started_processes(work.log())[1][1]
    wait_until(
        lambda: _pids(status_json(pipeline)[1], "workers") == {second},
        HEARTBEAT_TTL_S + 10,
        "the killed worker's heartbeat to expire",
    )


def test_after_redis_lost_its_data_the_sweep_recounts_the_backlog(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    pipeline.receive("--receivers", "1")
    make_corpus(tmp_path / "corpus", OBJECTS)
    storescu(pipeline, tmp_path / "corpus")
    assert status_json(pipeline)[1]["ready"]["objects"] == OBJECTS
    connection = Redis.from_url(pipeline.redis_url)
    connection.flushall()
    report = status_json(pipeline)[1]
    assert report["ready"]["objects"] == 0 and report["counted_at"] is None
    # The objects have waited ten minutes by now; a recovery pass (as a worker runs it) lists
    # their bucket once it is closed and its receiver no longer owes it a push, and recounts it.
    waited_since = time.time() - 600
    for path in waiting_objects(pipeline.spool):
        os.utime(path, (waited_since, waited_since))
    wait_until(
        lambda: not any((pipeline.spool / "ready").glob("*/writing/*")),
        BUCKET_S + 10,
        "the receiver to settle its bucket",
    )
    sweep(
        Spool(pipeline.spool),
        ingest_queue(connection),
        now=time.time() + BUCKET_S + UNQUEUED_GRACE_S,
        holder="test",
    )
    wait_until(lambda: status_json(pipeline)[1]["receivers"], 10, "the receiver's next beat")
    code, report = status_json(pipeline)
    assert report["ready"]["objects"] == OBJECTS
    assert report["ready"]["bytes"] == ready_bytes(pipeline)
    assert 600 <= report["ready"]["oldest_unfiled_age_s"] < 630
    assert report["counted_at"] is not None
    assert [p["name"] for p in report["problems"]] == ["no-worker", "backlog-too-old"]
    assert code == 5
    assert status(pipeline, "--expect", "receivers").returncode == 6


def test_up_serves_receivers_and_workers_on_one_endpoint_and_cleans_its_folder(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    metrics = free_port()
    up = pipeline.up("--metrics-port", f"127.0.0.1:{metrics}", "--receivers", "2")
    make_corpus(tmp_path / "corpus", 5)
    storescu(pipeline, tmp_path / "corpus")
    filed = 'pacs_ingest_filed_objects_total{outcome="filed"}'
    wait_until(lambda: scrape(metrics).get(filed) == 5, 30, "5 filed")
    samples = scrape(metrics)
    assert samples[f'pacs_ingest_received_objects_total{{calling_ae="{SENDER}"}}'] == 5
    assert samples[f'pacs_ingest_live_receivers{{spool="{pipeline.spool}"}}'] == 2
    [serving] = [line for line in up.log().splitlines() if '"metrics.serving"' in line]
    folder = Path(json.loads(serving)["folder"])
    assert any(folder.glob("*.db"))
    assert up.stop() == 0
    assert not folder.exists()
    assert Redis.from_url(pipeline.redis_url).smembers(HEARTBEATS_KEY) == set()  # stopped cleanly


def test_status_exits_7_when_a_file_system_is_short_of_space(pipeline: Pipeline) -> None:
    pipeline.spool.mkdir()
    result = status(pipeline, "--json", "--expect", "none", "--min-free", "100000T")
    report = json.loads(result.stdout)
    assert result.returncode == 7
    assert [p["name"] for p in report["problems"]] == ["low-space"]
    assert "the spool has " in report["problems"][0]["message"]


def test_status_never_prints_the_redis_password(pipeline: Pipeline) -> None:
    pipeline.spool.mkdir()
    pipeline.redis_url = pipeline.redis_url.replace("redis://", "redis://:hunter2@")
    for extra in ((), ("--json",)):
        result = status(pipeline, "--expect", "none", *extra)
        assert result.returncode == 0, result.stdout  # the test server has no password set
        assert "hunter2" not in result.stdout + result.stderr
        assert ":***@" in result.stdout


def test_status_finds_the_embedded_server_of_up_from_the_spool_alone(pipeline: Pipeline) -> None:
    pipeline.run(
        *("up", "-b", f"INGEST:{pipeline.port}", "--directory", str(pipeline.archive)),
        *("--spool-dir", str(pipeline.spool)),
        log_name="up.log",
    )
    wait_for_port(pipeline.port)
    password = (pipeline.spool / "redis" / "password").read_text().strip()

    def spool_status() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "pacs_ingest", "status", "--spool-dir", str(pipeline.spool)],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=ROOT,
            env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        )

    wait_until(lambda: spool_status().returncode == 0, 30, "a healthy pipeline")
    result = spool_status()
    assert "redis         reachable (unix://" in result.stdout
    assert password not in result.stdout + result.stderr
