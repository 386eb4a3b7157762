"""A worker's lease against a real Redis: it lives while its process does, goes at a clean stop,
and expires after a SIGKILL, and only then are the killed worker's claims given back."""

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from pacs_ingest.embedded_redis import RedisServer, server_binary
from pacs_ingest.shared.keys import claims_key, names_key, worker_lease_key
from pacs_ingest.workers.claims import reclaim_dead
from pacs_ingest.workers.lease import LEASE_TTL_S, WorkerLease
from pacs_ingest.workers.redis_link import RedisLink
from tests.helpers import ROOT, wait_until

LANE = "0123456789ab"

# A worker process that holds a lease and a claim, then waits to be killed.
_WORKER = """
import sys, time
from redis import Redis
from pacs_ingest.workers.claims import Claims
from pacs_ingest.workers.lease import WorkerLease
from pacs_ingest.workers.redis_link import RedisLink
url, lane = sys.argv[1], sys.argv[2]
connection = Redis.from_url(url)
WorkerLease(connection, "doomed", RedisLink(url)).start()
print(len(Claims(connection, lane, "doomed").take(5)), flush=True)
time.sleep(600)
"""


def test_a_lease_lives_with_its_worker_and_goes_when_it_stops(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    lease = WorkerLease(connection, "w1", RedisLink(redis_url))
    lease.start()
    assert 0 < connection.ttl(worker_lease_key("w1")) <= LEASE_TTL_S
    lease.stop()
    assert not connection.exists(worker_lease_key("w1"))


@pytest.fixture
def worker(redis_url: str) -> Iterator[subprocess.Popen]:
    connection = Redis.from_url(redis_url)
    connection.rpush(names_key(LANE), *(f"1764000000/{i:032x}" for i in range(8)))
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER, redis_url, LANE], stdout=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None
    assert process.stdout.readline() == b"5\n"
    yield process
    process.kill()
    process.wait()


def test_a_killed_workers_claims_wait_for_its_lease_to_expire(
    redis_url: str, worker: subprocess.Popen
) -> None:
    connection = Redis.from_url(redis_url)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert reclaim_dead(connection, LANE) == 0  # its lease still runs: it may be mid-batch
    assert connection.llen(claims_key(LANE, "doomed")) == 5
    wait_until(
        lambda: not connection.exists(worker_lease_key("doomed")),
        LEASE_TTL_S + 2,
        "the killed worker's lease to expire",
    )
    assert reclaim_dead(connection, LANE) == 5
    assert connection.llen(names_key(LANE)) == 8


def test_a_lease_that_cannot_reach_redis_reports_the_link_lost(tmp_path: Path) -> None:
    server = RedisServer(server_binary(), tmp_path / "redis", persistent=False)
    server.start()
    server.stop()
    link = RedisLink(server.url)
    lease = WorkerLease(Redis.from_url(server.url), "w1", link)
    lease.start()
    try:
        assert link.is_lost
    finally:
        lease.stop()
