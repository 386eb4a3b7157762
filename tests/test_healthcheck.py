"""The container health checks: a C-ECHO at the receivers' -b, and a live worker of this host."""

import os
import subprocess
import sys

from pacs_ingest.embedded_redis import free_port
from tests.conftest import Pipeline
from tests.helpers import ROOT, wait_until


def _healthcheck(role: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pacs_ingest.healthcheck", role],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **env},
        timeout=30,
    )


def test_echo_is_healthy_only_where_a_receiver_answers(pipeline: Pipeline) -> None:
    pipeline.receive("--receivers", "1")
    healthy = _healthcheck("echo", PACS_INGEST_BIND=f"INGEST:{pipeline.port}")
    assert (healthy.returncode, healthy.stderr) == (0, "")
    rejected = _healthcheck("echo", PACS_INGEST_BIND=f"OTHER:{pipeline.port}")
    assert rejected.returncode == 1 and "no association with OTHER" in rejected.stderr
    closed = _healthcheck("echo", PACS_INGEST_BIND=f"INGEST:{free_port()}")
    assert closed.returncode == 1 and "unhealthy" in closed.stderr
    bad = _healthcheck("echo", PACS_INGEST_BIND="INGEST:port")
    assert bad.returncode == 2 and "invalid port" in bad.stderr


def test_worker_is_healthy_while_a_worker_of_this_host_holds_its_lease(pipeline: Pipeline) -> None:
    env = {"REDIS_URL": pipeline.redis_url}
    assert _healthcheck("worker", **env).returncode == 1  # none yet
    work = pipeline.work("--processes", "1")
    wait_until(lambda: _healthcheck("worker", **env).returncode == 0, 30, "a healthy worker")
    other_queue = _healthcheck("worker", **env, PACS_INGEST_QUEUE="elsewhere")
    assert other_queue.returncode == 1 and "'elsewhere'" in other_queue.stderr
    assert work.stop() == 0
    stopped = _healthcheck("worker", **env)
    assert stopped.returncode == 1 and "no live worker of host" in stopped.stderr
    gone = _healthcheck("worker", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert gone.returncode == 1 and "Redis:" in gone.stderr


def test_a_missing_variable_or_role_is_a_configuration_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PACS_INGEST_BIND"}
    missing = subprocess.run(
        [sys.executable, "-m", "pacs_ingest.healthcheck", "echo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert missing.returncode == 2 and "PACS_INGEST_BIND" in missing.stderr
    assert _healthcheck("nonsense").returncode == 2
