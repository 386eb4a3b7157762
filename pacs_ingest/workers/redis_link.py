"""Whether this process can reach Redis: one warning when it goes, one line when it is back.

Redis down (restarting, or the network between) is a state, not an error per attempt: a
process reports the change, retries with a growing, jittered pause, and logs no traceback.
"""

import random
import threading
import time

from pacs_ingest.shared import log
from pacs_ingest.shared.queue import redacted

FIRST_RETRY_S = 0.5
LONGEST_RETRY_S = 5.0


def retry_delay(
    attempt: int,
    *,
    jitter: float,
    first_s: float = FIRST_RETRY_S,
    longest_s: float = LONGEST_RETRY_S,
) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): doubling from `first_s` up to
    `longest_s`, then scaled by 1 - `jitter` (0..0.5) so processes do not retry in step."""
    return min(first_s * 2 ** (attempt - 1), longest_s) * (1 - jitter)


def random_jitter() -> float:
    return random.uniform(0.0, 0.5)


class RedisLink:
    """Thread-safe: rq's threads and ours report to the same link."""

    def __init__(self, url: str) -> None:
        self._where = redacted(url)
        self._lock = threading.Lock()
        self._lost_at: float | None = None

    @property
    def is_lost(self) -> bool:
        return self._lost_at is not None

    def lost(self, error: str) -> None:
        with self._lock:
            if self._lost_at is not None:
                return
            self._lost_at = time.monotonic()
        log.warning("redis.unreachable", redis=self._where, error=error, retrying=True)

    def regained(self) -> None:
        with self._lock:
            if self._lost_at is None:
                return
            down_s = time.monotonic() - self._lost_at
            self._lost_at = None
        log.event("redis.reachable", redis=self._where, down_s=round(down_s, 1))
