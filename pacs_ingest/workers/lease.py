"""A worker process's lease: a Redis key that exists while the process is alive.

rq notices a killed worker only after minutes; recovery must know within seconds whether the
refs a worker claimed (workers.claims) still have someone working on them. Each worker process
refreshes its key from a thread; SIGKILL stops the thread, the key expires, and recovery gives
that worker's claims back to their lanes. The renewals are also how the worker learns that Redis
is back.
"""

import contextlib
import threading

from redis import Redis
from redis.exceptions import RedisError

from pacs_ingest.shared.keys import worker_lease_key
from pacs_ingest.workers.redis_link import RedisLink

LEASE_TTL_S = 15
_RENEW_EVERY_S = 5


class WorkerLease:
    def __init__(self, connection: Redis, worker_name: str, link: RedisLink) -> None:
        self._connection = connection
        self._link = link
        self._key = worker_lease_key(worker_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def start(self) -> None:
        self._renew()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(RedisError):  # else it expires on its own
            self._connection.delete(self._key)

    def _renew(self) -> None:
        try:
            self._connection.set(self._key, 1, ex=LEASE_TTL_S)
        except RedisError as exc:
            self._link.lost(str(exc))
        else:
            self._link.regained()

    def _run(self) -> None:
        while not self._stop.wait(_RENEW_EVERY_S):
            self._renew()
