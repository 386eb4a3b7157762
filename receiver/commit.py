"""Group commit: one ready/ directory flush and one Redis round trip for all stores in flight.

Every association thread of a receiver process hands its freshly renamed object to the one
committer thread and waits. The committer takes everything waiting, fsyncs ready/ once, enqueues
one ingest job for the lot (with its tracking entries, in one pipeline) and wakes the waiters.
Under load, many stores share each flush; alone, a store pays for exactly one.
"""

import queue
import threading
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError
from rq import Queue

from shared import log
from shared.jobs import Filing, IngestJob, enqueue_ingest
from shared.spool import Spool

_MAX_BATCH = 256
_REDIS_RETRY_AFTER_S = 2.0


@dataclass(slots=True)
class _Pending:
    name: str
    done: threading.Event = field(default_factory=threading.Event)
    durable: bool = False
    enqueued: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class Commit:
    """One object's fate: `durable` once ready/ is flushed, `enqueued` if Redis took its job."""

    durable: bool
    enqueued: bool
    error: str


class Committer:
    def __init__(self, spool: Spool, rq_queue: Queue, filing: Filing) -> None:
        self._spool = spool
        self._rq_queue = rq_queue
        self._filing = filing
        self._waiting: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._redis_down_until = 0.0
        self._thread = threading.Thread(target=self._run, name="committer", daemon=True)
        self._thread.start()

    def commit(self, name: str) -> Commit:
        """Block until ready/<name> is durable and, if Redis allows, enqueued."""
        pending = _Pending(name)
        self._waiting.put(pending)
        pending.done.wait()
        return Commit(pending.durable, pending.enqueued, pending.error)

    def close(self) -> None:
        """Finish the commits already handed in, then stop the thread."""
        self._waiting.put(None)
        self._thread.join()

    def _take_batch(self) -> tuple[list[_Pending], bool]:
        first = self._waiting.get()
        if first is None:
            return [], True
        batch = [first]
        while len(batch) < _MAX_BATCH:
            try:
                item = self._waiting.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        closing = False
        while not closing:
            batch, closing = self._take_batch()
            try:
                if batch:
                    self._commit(batch)
            except Exception as exc:  # the thread must outlive any one batch
                log.error("commit.failed", error=repr(exc))
                for pending in batch:
                    pending.error = f"commit failed: {exc!r}"
            finally:
                for pending in batch:
                    pending.done.set()

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self._spool.sync_ready()
        except OSError as exc:
            log.error("spool.sync_failed", spool=str(self._spool), error=str(exc))
            for pending in batch:
                pending.error = f"spool flush failed: {exc.strerror}"
            return
        for pending in batch:
            pending.durable = True
        if time.monotonic() < self._redis_down_until:
            return
        job = IngestJob(str(self._spool), tuple(p.name for p in batch), self._filing)
        try:
            enqueue_ingest(self._rq_queue, job)
        except RedisError as exc:
            # The spool holds the objects; the recovery sweep enqueues them later. Until Redis
            # has had time to come back, stores do not wait for it again.
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_AFTER_S
            log.warning("queue.enqueue_failed", objects=len(batch), error=str(exc))
            return
        for pending in batch:
            pending.enqueued = True
