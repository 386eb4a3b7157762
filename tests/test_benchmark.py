"""The throughput benchmark (benchmarks/): its smallest mode end to end, so it cannot rot, and
the measurements it rests on, checked against real processes."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from benchmarks import procfs, report
from benchmarks.cases import CASES
from benchmarks.contenders import PacsIngest, all_contenders
from benchmarks.run import Run, RunError, Server, Trial, wait_filed
from benchmarks.senders import MODES, Plan
from tests.helpers import ROOT

BENCHMARK = [sys.executable, "-m", "benchmarks.ingest"]
CPU_PER_OBJECT = [sys.executable, "-m", "benchmarks.cpu_per_object"]


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A benchmark command, from the checkout, its output captured."""
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _child(code: str) -> subprocess.Popen:
    """A Python child that runs `code`, says `ready` and then waits for its stdin to close."""
    script = textwrap.dedent(code) + "\nprint('ready', flush=True)\nsys.stdin.read()\n"
    return subprocess.Popen(
        [sys.executable, "-c", "import sys\n" + script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _finish(child: subprocess.Popen) -> None:
    child.communicate(timeout=30)


def test_the_smallest_benchmark_compares_dcmtk_and_pacs_ingest_end_to_end(tmp_path: Path) -> None:
    figures, work = tmp_path / "figures.json", tmp_path / "work"
    done = _run(
        [
            *BENCHMARK,
            *("--cases", "8k-4", "--count", "8", "--rounds", "1"),
            *("--contenders", "dcmtk,pacs-ingest", "--json", str(figures)),
            *("--cache-dir", str(tmp_path / "cache"), "--work-dir", str(work)),
        ],
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "| 8 KB, 4 associations | DCMTK storescp --fork | " in done.stdout
    assert "|  | pacs-ingest, filed | " in done.stdout
    raw = json.loads(figures.read_text())
    runs = {run["contender"]: run for run in raw["runs"]}
    assert set(runs) == {"dcmtk", "pacs-ingest"}
    assert all(run["error"] is None and run["objects"] == 8 for run in runs.values())
    ingest = runs["pacs-ingest"]
    assert 0 < ingest["acknowledged_s"] <= ingest["filed_s"]
    # Every role is accounted for; with 8 objects one role may spend less than a clock tick.
    assert set(ingest["cpu_ms"]) == {"receivers", "workers", "other"}
    assert all(ms >= 0 for ms in ingest["cpu_ms"].values()) and sum(ingest["cpu_ms"].values()) > 0
    names = {process["name"] for process in ingest["processes"]}
    assert {"up", "receiver-0", "receiver-1", "worker-0", "worker-1"} <= names
    assert all(process["peak_rss_kb"] > 0 for process in ingest["processes"])
    filed = next(line for line in raw["summary"] if line["phase"] == "filed")
    assert filed["ratio_to_dcmtk"]["median"] > 0
    assert not work.exists(), "a benchmark that succeeded leaves nothing behind"


def test_a_pattern_that_gives_two_objects_one_path_is_refused(tmp_path: Path) -> None:
    done = _run(
        [
            *BENCHMARK,
            *("--cases", "8k-1", "--count", "3", "--contenders", "pacs-ingest"),
            *("--filepath", "{00100020}.dcm", "--cache-dir", str(tmp_path / "cache")),
            *("--work-dir", str(tmp_path / "work")),
        ],
        timeout=60,
    )
    assert done.returncode == 2
    assert "gives 3 objects 1 paths" in done.stderr


def _filing_trial(run_dir: Path) -> Trial:
    return Trial(
        round=1,
        case="8k-1",
        contender=PacsIngest(receivers=1, workers=1, filepath="{00080018}"),
        plan=Plan(MODES["1"], ()),
        objects=2,
        bytes=0,
        run_dir=run_dir,
        timeout=30,
        archive_paths=("a/1.dcm", "b/2.dcm"),
    )


def test_filed_means_every_object_is_at_its_archive_path(tmp_path: Path) -> None:
    trial = _filing_trial(tmp_path)
    server = Server(["sleep", "60"], tmp_path)

    def file_later() -> None:
        time.sleep(0.3)
        for path in trial.archive_paths:
            (tmp_path / "archive" / path).parent.mkdir(parents=True)
            (tmp_path / "archive" / path).write_bytes(b"")

    filer = threading.Thread(target=file_later)
    start = time.monotonic()
    filer.start()
    try:
        wait_filed(trial, server, start + 30)
        assert time.monotonic() - start >= 0.3
        assert all((tmp_path / "archive" / path).exists() for path in trial.archive_paths)
    finally:
        filer.join()
        server.stop()


def test_a_contender_that_dies_before_filing_is_a_failed_run(tmp_path: Path) -> None:
    server = Server(["true"], tmp_path)
    try:
        wait_filed(_filing_trial(tmp_path), server, time.monotonic() + 30)
    except RunError as exc:
        assert "2 objects not filed" in str(exc)
    else:
        raise AssertionError("wait_filed returned though nothing was filed")
    finally:
        server.stop()


def test_cpu_counts_a_process_and_the_children_it_reaped() -> None:
    child = _child(
        """
        import subprocess, time
        def burn(seconds):
            end = time.process_time() + seconds
            while time.process_time() < end:
                pass
        burn(0.3)
        subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 0.3\\n"
                        "while time.process_time() < end: pass"])
        """
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        reading = procfs.read(child.pid)
        assert reading is not None
        assert reading.own_ticks * procfs.CLOCK_TICK_MS >= 250
        assert reading.reaped_ticks * procfs.CLOCK_TICK_MS >= 250
    finally:
        _finish(child)


def test_the_watch_keeps_the_peak_rss_of_a_child_that_is_gone() -> None:
    parent = _child(
        """
        import subprocess
        subprocess.run([sys.executable, "-c", "import time\\nblock = bytearray(80 << 20)\\n"
                        "time.sleep(1)"])
        """
    )
    try:
        with procfs.Watch(parent.pid, interval=0.05) as watch:
            assert parent.stdout is not None and parent.stdout.readline() == "ready\n"
        others = {pid: peak for pid, peak in watch.peaks.items() if pid != parent.pid}
        assert others and max(others.values()) >= 80 << 10
    finally:
        _finish(parent)


def test_the_ratio_to_dcmtk_is_taken_round_by_round() -> None:
    contenders = all_contenders(receivers=2, workers=2, filepath="{00080018}")
    case = CASES["8k-4"]
    runs = [
        Run(1, case.key, "dcmtk", 100, 10**6, acknowledged_s=1.0),
        Run(2, case.key, "dcmtk", 100, 10**6, acknowledged_s=0.5),
        Run(1, case.key, "pacs-ingest", 100, 10**6, acknowledged_s=2.0, filed_s=2.0),
        Run(2, case.key, "pacs-ingest", 100, 10**6, acknowledged_s=2.0, filed_s=4.0),
    ]
    table = report.lines([case], [contenders["dcmtk"], contenders["pacs-ingest"]], runs)
    filed = next(line for line in table if line.phase == report.FILED)
    # Round 1: 50/s against 100/s; round 2: 25/s against 200/s.
    assert sorted(filed.ratios(report.yardstick_rates(runs))) == [0.125, 0.5]
    assert "| 37.5 (25.0–50.0) | " in report.markdown(table, runs)  # noqa: RUF001


def test_cpu_per_object_alternates_two_trees_for_each_role(tmp_path: Path) -> None:
    """benchmarks/cpu_per_object.py: both roles, this checkout against itself, the runs kept."""
    work = tmp_path / "work"
    for role in ("receiver", "worker"):
        done = _run(
            [
                *(*CPU_PER_OBJECT, "--role", role, "--count", "12", "--rounds", "2"),
                *("--against", str(ROOT), "--work-dir", str(work / role)),
                *("--cache-dir", str(tmp_path / "cache")),
            ],
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        rounds = [line for line in lines if line.startswith("round ")]
        assert len(rounds) == 4  # 2 rounds x 2 trees, alternating
        assert all(float(line.split()[-2]) > 0 for line in rounds)
        assert lines[-3].startswith(f"{role} this ({ROOT}): ")
        assert lines[-2].startswith(f"{role} against ({ROOT}): ")
        assert lines[-1].startswith("this / against: ")
    # Every worker run filed its objects, and what the runs stored is still there.
    archives = sorted((work / "worker").glob("*/archive"))
    assert len(archives) == 4
    assert all(sum(1 for _ in archive.rglob("*.dcm")) == 12 for archive in archives)


def test_cpu_per_object_refuses_a_folder_that_is_no_source_tree(tmp_path: Path) -> None:
    done = _run([*CPU_PER_OBJECT, "--against", str(tmp_path)], timeout=60)
    assert done.returncode == 2
    assert "is not a pacs-ingest source tree" in done.stderr
