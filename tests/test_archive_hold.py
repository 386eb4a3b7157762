"""The archive hold against a real Redis: each storage failure doubles the hold up to its cap,
a hold ends by itself, and recovery asks for no drain while it lasts and one drain after."""

import time
from pathlib import Path

from redis import Redis

from benchmarks.backlog import build_backlog
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.keys import drain_key, hold_key
from pacs_ingest.shared.lane import open_lane
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.backoff import FIRST_HOLD_S, LONGEST_HOLD_S, hold, on_hold
from pacs_ingest.workers.recovery import sweep
from tests.helpers import wait_until

SPOOL = "/spool/on/hold"


def test_each_failure_while_the_trouble_lasts_doubles_the_hold_up_to_five_minutes(
    redis_url: str,
) -> None:
    connection = Redis.from_url(redis_url)
    holds = [hold(connection, SPOOL, "No space left on device") for _ in range(9)]
    assert holds == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert LONGEST_HOLD_S - 1 <= connection.ttl(hold_key(SPOOL)) <= LONGEST_HOLD_S
    assert on_hold(connection, SPOOL)
    assert not on_hold(connection, "/another/spool")


def test_a_hold_ends_by_itself(redis_url: str) -> None:
    connection = Redis.from_url(redis_url)
    assert hold(connection, SPOOL, "archive unmounted") == FIRST_HOLD_S
    wait_until(lambda: not on_hold(connection, SPOOL), FIRST_HOLD_S + 2, "the hold to end")
    assert hold(connection, SPOOL, "archive unmounted") == 2 * FIRST_HOLD_S  # not calm yet


def test_recovery_asks_for_no_drain_during_a_hold_and_for_one_after_it(
    tmp_path: Path, redis_url: str
) -> None:
    spool = Spool(tmp_path / "spool")
    spool.create()
    lane = open_lane(spool, Filing(str(tmp_path / "archive"), None, 0, 0))
    build_backlog(spool, lane, 100, per_bucket=100, now=time.time())
    connection = Redis.from_url(redis_url)
    rq_queue = ingest_queue(connection)
    hold(connection, str(spool), "No space left on device")
    result = sweep(spool, rq_queue, now=time.time(), holder="test")
    assert result is not None and result.requeued == 100
    connection.delete(drain_key(lane))  # the push's drain ran, met the hold, returned
    rq_queue.empty()
    assert sweep(spool, rq_queue, now=time.time(), holder="test") is not None
    assert rq_queue.count == 0  # the objects wait, queued, in ready/
    wait_until(lambda: not on_hold(connection, str(spool)), FIRST_HOLD_S + 2, "the hold's end")
    sweep(spool, rq_queue, now=time.time(), holder="test")
    assert rq_queue.count == 1
    assert connection.exists(drain_key(lane))
