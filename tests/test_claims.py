"""Job stealing against a real Redis: a drain's claims move refs off the lane atomically, go back
in order when unfinished, and a dead worker's claims return to the lane while a live one's stay."""

import threading
import time

from redis import Redis

from pacs_ingest.shared.keys import claimers_key, claims_key, names_key, worker_lease_key
from pacs_ingest.workers.claims import Claims, reclaim_dead

LANE = "0123456789ab"
REFS = [f"1764000000/{index:032x}" for index in range(10)]


def _lane(redis_url: str) -> Redis:
    connection = Redis.from_url(redis_url)
    connection.rpush(names_key(LANE), *REFS)
    return connection


def _listed(connection: Redis, key: str) -> list[str]:
    return [ref.decode() for ref in connection.lrange(key, 0, -1)]


def _claimers(connection: Redis) -> set[str]:
    return {name.decode() for name in connection.smembers(claimers_key(LANE))}


def test_a_claim_moves_refs_from_the_head_of_the_lane_to_the_workers_claims(
    redis_url: str,
) -> None:
    connection = _lane(redis_url)
    assert Claims(connection, LANE, "w1").take(4) == REFS[:4]
    assert _listed(connection, names_key(LANE)) == REFS[4:]
    assert _listed(connection, claims_key(LANE, "w1")) == REFS[:4]
    assert _claimers(connection) == {"w1"}


def test_finished_claims_are_gone_and_unfinished_ones_go_back_to_the_head_in_order(
    redis_url: str,
) -> None:
    connection = _lane(redis_url)
    first = Claims(connection, LANE, "w1")
    first.take(3)
    first.finish()
    assert not connection.exists(claims_key(LANE, "w1"))
    second = Claims(connection, LANE, "w2")
    taken = second.take(4)
    second.give_back(taken[2:])  # two filed, two not
    assert _listed(connection, names_key(LANE)) == taken[2:] + REFS[7:]  # at the head, in order
    assert not connection.exists(claims_key(LANE, "w2"))
    assert "w2" not in _claimers(connection)


def test_a_dead_workers_claims_are_stolen_back_and_a_live_workers_are_left(
    redis_url: str,
) -> None:
    connection = _lane(redis_url)
    connection.set(worker_lease_key("alive"), 1, ex=60)
    Claims(connection, LANE, "alive").take(3)
    dead = Claims(connection, LANE, "dead").take(3)  # no lease: killed, or never had one
    assert reclaim_dead(connection, LANE) == 3
    assert _listed(connection, names_key(LANE)) == dead + REFS[6:]
    assert _listed(connection, claims_key(LANE, "alive")) == REFS[:3]
    assert _claimers(connection) == {"alive"}
    assert reclaim_dead(connection, LANE) == 0  # once only


def test_a_claim_on_an_empty_lane_waits_for_refs_and_claims_what_came_with_the_first(
    redis_url: str,
) -> None:
    connection = Redis.from_url(redis_url)
    claims = Claims(connection, LANE, "w1")
    started = time.monotonic()
    assert claims.take(4, wait_s=0.3) == []  # nothing came: back after the wait
    assert time.monotonic() - started >= 0.25
    pusher = threading.Timer(0.2, lambda: Redis.from_url(redis_url).rpush(names_key(LANE), *REFS))
    pusher.start()
    started = time.monotonic()
    taken = claims.take(4, wait_s=5)
    pusher.join()
    assert time.monotonic() - started < 4  # woken by the push, not by the end of the wait
    assert taken == REFS[: len(taken)] and 1 <= len(taken) <= 4
    assert _listed(connection, claims_key(LANE, "w1")) == taken  # claimed as a batch is
    assert _listed(connection, names_key(LANE)) == REFS[len(taken) :]
    assert _claimers(connection) == {"w1"}  # recovery can find a waiting drain's claims


def test_while_the_spool_is_on_hold_a_claim_takes_nothing_and_says_so(redis_url: str) -> None:
    connection = _lane(redis_url)
    claims = Claims(connection, LANE, "w1", hold="hold-key")
    connection.set("hold-key", 1, ex=60)
    assert claims.take(4, wait_s=1) is None  # at once: no wait for a held spool
    assert _listed(connection, names_key(LANE)) == REFS
    connection.delete("hold-key")
    assert claims.take(4) == REFS[:4]
