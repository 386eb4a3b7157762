"""Heartbeats: each receiver and worker process keeps a Redis key with a TTL while it lives.

`pacs-ingest status` and the metrics read them to say who is alive, on which host, with which pid,
without asking any process. A process that is SIGKILLed stops beating and its key expires after
HEARTBEAT_TTL_S; one that stops cleanly deletes its key. A set indexes the keys, so readers never
scan the keyspace (which holds one hash per queued job); members whose key expired are dropped by
the reader that finds them.
"""

import os
import socket
import threading
import time
from dataclasses import asdict, dataclass

import orjson
from redis import Redis
from redis.exceptions import RedisError

from pacs_ingest.shared import log
from pacs_ingest.shared.keys import HEARTBEATS_KEY, heartbeat_key

HEARTBEAT_TTL_S = 15
_BEAT_EVERY_S = 5
_STOP_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class Beat:
    """What one live process says about itself."""

    role: str  # "receiver" or "worker"
    host: str
    pid: int
    started_at: float  # time.time()
    spool: str = ""  # a receiver's spool; workers serve any
    queue: str = ""

    @property
    def key(self) -> str:
        return heartbeat_key(self.role, self.host, self.pid)


class Heartbeat:
    """This process's heartbeat, refreshed from a daemon thread until `stop`."""

    def __init__(self, connection: Redis, role: str, *, spool: str = "", queue: str = "") -> None:
        self._connection = connection
        self.beat = Beat(role, socket.gethostname(), os.getpid(), time.time(), spool, queue)
        self._value = orjson.dumps(asdict(self.beat))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and remove the key, without holding up a shutdown: while Redis is
        unreachable (or a beat is stuck on it) the key is left to expire."""
        self._stop.set()
        self._thread.join(_STOP_WAIT_S)
        if self._failing or self._thread.is_alive():
            return
        try:
            with self._connection.pipeline() as pipe:
                pipe.delete(self.beat.key).srem(HEARTBEATS_KEY, self.beat.key).execute()
        except RedisError:
            pass  # it expires on its own

    def _run(self) -> None:
        while True:
            self._send()
            if self._stop.wait(_BEAT_EVERY_S):
                return

    def _send(self) -> None:
        try:
            with self._connection.pipeline() as pipe:
                pipe.set(self.beat.key, self._value, ex=HEARTBEAT_TTL_S)
                pipe.sadd(HEARTBEATS_KEY, self.beat.key)
                pipe.execute()
        except RedisError as exc:
            if not self._failing:  # one warning per outage, not one every few seconds
                log.warning("heartbeat.failed", role=self.beat.role, error=str(exc))
            self._failing = True
            return
        if self._failing:
            log.event("heartbeat.resumed", role=self.beat.role)
        self._failing = False


def live_processes(connection: Redis) -> list[Beat]:
    """Every process whose heartbeat has not expired, ordered by role, host and pid."""
    keys = sorted(key.decode() for key in connection.smembers(HEARTBEATS_KEY))
    if not keys:
        return []
    values = connection.mget(keys)
    expired = [key for key, value in zip(keys, values, strict=True) if value is None]
    if expired:
        connection.srem(HEARTBEATS_KEY, *expired)
    beats = [Beat(**orjson.loads(value)) for value in values if value is not None]
    return sorted(beats, key=lambda beat: (beat.role, beat.host, beat.pid))
