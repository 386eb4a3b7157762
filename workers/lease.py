"""A job's lease: a Redis key that lives while a live worker runs the job.

rq notices a killed worker only after minutes; the recovery sweep must know within seconds which
started jobs are dead. A thread refreshes the key while the job runs; SIGKILL stops the thread, the
key expires, and the sweep re-enqueues what the job had not filed yet.
"""

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import RedisError

from shared import log
from shared.jobs import lease_key

LEASE_TTL_S = 15
_RENEW_EVERY_S = 5


@contextmanager
def held_lease(connection: Redis, job_id: str) -> Iterator[None]:
    key = lease_key(job_id)
    done = threading.Event()

    def renew() -> None:
        while not done.wait(_RENEW_EVERY_S):
            try:
                connection.set(key, 1, ex=LEASE_TTL_S)
            except RedisError as exc:
                log.warning("lease.renew_failed", job=job_id, error=str(exc))

    connection.set(key, 1, ex=LEASE_TTL_S)
    renewer = threading.Thread(target=renew, name=f"lease-{job_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join()
        with contextlib.suppress(RedisError):  # else it expires on its own
            connection.delete(key)
