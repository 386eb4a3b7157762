"""What recording the metrics costs per object, as receivers and workers record them.

    python -m benchmarks.metrics_cost

Runs the receiver's per-group recording (receiver.store_metrics: durable, then answered) and the
workers' per-batch recording (workers.filing_metrics) in a child process with a
PROMETHEUS_MULTIPROC_DIR (mmap files, as under --metrics-port) and in one without (in-memory
values), and prints microseconds of CPU per object for each group or batch size.
"""

import os
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

# prometheus_client picks in-memory or mmap values when first imported: each child imports these
# with its own environment.
from pacs_ingest.receiver import store_metrics
from pacs_ingest.shared.spool import ReadyObject
from pacs_ingest.workers import filing_metrics

_GROUPS = (1, 2, 8, 32)
_ROUNDS_OBJECTS = 200_000


def _measure() -> None:
    mode = "multiprocess (mmap)" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "in-memory"
    for size in _GROUPS:
        now = time.monotonic()
        parts = [
            SimpleNamespace(received_at=now, calling_ae_title=f"AE{i % 2}", size=8192)
            for i in range(size)
        ]
        done = [SimpleNamespace(outcome="filed") for _ in range(size)]
        spooled = [ReadyObject(str(i), time.time(), 8192) for i in range(size)]
        rounds = _ROUNDS_OBJECTS // size
        started = time.process_time()
        for _ in range(rounds):
            store_metrics.durable(parts, now)  # type: ignore[arg-type]
            store_metrics.answered(parts, now)  # type: ignore[arg-type]
        receiver_us = (time.process_time() - started) / (rounds * size) * 1e6
        started = time.process_time()
        for _ in range(rounds):
            filing_metrics.batch_done(done, spooled, time.time())  # type: ignore[arg-type]
        worker_us = (time.process_time() - started) / (rounds * size) * 1e6
        print(
            f"{mode:20} group/batch of {size:2}: receiver {receiver_us:5.2f} µs/object, "
            f"worker {worker_us:5.2f} µs/object"
        )


def main() -> None:
    if sys.argv[1:] == ["--child"]:
        _measure()
        return
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    child = [sys.executable, "-m", "benchmarks.metrics_cost", "--child"]
    subprocess.run(child, env=env, check=True)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(child, env={**env, "PROMETHEUS_MULTIPROC_DIR": folder}, check=True)


if __name__ == "__main__":
    main()
