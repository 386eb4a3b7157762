"""shared.periodic: the one thread loop behind heartbeats, leases and sweep requests."""

import itertools
import threading
import time

from pacs_ingest.shared.periodic import Periodic


def _ticks(every_s: float, *, wait_first: bool, run_s: float) -> list[float]:
    """When each tick came, in seconds after start."""
    started = time.monotonic()
    seen: list[float] = []
    ticker = Periodic(
        "test", every_s, lambda: seen.append(time.monotonic() - started), wait_first=wait_first
    )
    ticker.start()
    time.sleep(run_s)
    assert ticker.stop(5)
    return seen


def test_it_ticks_at_once_then_every_interval_until_stopped() -> None:
    seen = _ticks(0.2, wait_first=False, run_s=0.5)
    assert seen[0] < 0.1
    assert 2 <= len(seen) <= 3
    assert all(b - a >= 0.19 for a, b in itertools.pairwise(seen))


def test_wait_first_skips_the_tick_at_start() -> None:
    seen = _ticks(0.2, wait_first=True, run_s=0.3)
    assert len(seen) == 1
    assert seen[0] >= 0.19


def test_stop_says_when_a_tick_outlives_its_timeout() -> None:
    release = threading.Event()
    ticker = Periodic("test", 10, lambda: release.wait(5))
    ticker.start()
    assert not ticker.stop(0.1)
    release.set()
    assert ticker.stop(5)
