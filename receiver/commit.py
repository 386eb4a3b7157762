"""Group commit: the stores that finish together share one fsync of ready/ and one Redis round
trip, and each is answered only once both are done.

Each finished part file is fsynced and renamed into ready/ on a thread of a small pool (fsync
blocks; several run at once). It then joins the next group: one thread flushes ready/ once for
the whole group and enqueues its objects in one pipeline, while the stores finishing meanwhile
gather for the group after. Under load many stores share each flush; alone, a store pays for
exactly one. Nothing here runs per PDU, and the event loop never waits on a disk or on Redis.

When Redis cannot take a group, its objects are durable all the same (the sender gets Success
unless --require-queue); their names are kept and enqueued with a later group, so a restarted
Redis gets them within seconds, and the recovery sweep is the backstop for the rest.
"""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from redis.exceptions import RedisError

from receiver.store import PartFile
from shared import log
from shared.spool import Spool

_REDIS_RETRY_AFTER_S = 2.0
_MAX_UNQUEUED = 100_000  # names kept for a later enqueue; beyond that the sweep finds them
_FILE_SYNC_THREADS = 8


@dataclass(frozen=True, slots=True)
class Commit:
    """One object's fate: `durable` once it is in ready/ and ready/ is flushed, `enqueued` if
    Redis took its name; `error` says why it is not durable."""

    durable: bool
    enqueued: bool
    error: str = ""


class GroupCommit:
    """The group commit of one receiver process. `enqueue(names)` puts one group's names on
    the queue in one round trip (raising RedisError if it cannot)."""

    def __init__(self, spool: Spool, enqueue: Callable[[list[str]], None]) -> None:
        self._spool = spool
        self._enqueue = enqueue
        self._file_sync = ThreadPoolExecutor(_FILE_SYNC_THREADS, thread_name_prefix="fsync")
        self._flusher = ThreadPoolExecutor(1, thread_name_prefix="commit")
        self._waiting: list[tuple[str, asyncio.Future[Commit]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._unqueued: list[str] = []  # touched by the flusher thread only
        self._redis_down_until = 0.0

    async def commit(self, part: PartFile) -> Commit:
        """Make `part` durable in ready/ and enqueue it; its Commit (never raises)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._file_sync, part.make_durable, self._spool)
        except OSError as exc:
            part.discard()
            return Commit(False, False, f"cannot spool: {exc.strerror or exc}")
        future: asyncio.Future[Commit] = loop.create_future()
        self._waiting.append((part.name, future))
        if self._flushing is None:
            self._flushing = loop.create_task(self._flush_groups())
        return await future

    def retry_unqueued(self) -> None:
        """Enqueue what Redis refused earlier, without waiting for a new store to bring it."""
        if self._flushing is None and self._unqueued:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_groups())

    async def _flush_groups(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                group, self._waiting = self._waiting, []
                names = [name for name, _ in group]
                commit = await loop.run_in_executor(self._flusher, self._flush, names)
                for _, future in group:
                    if not future.done():
                        future.set_result(commit)
                if not self._waiting:
                    return
        finally:
            self._flushing = None

    def _flush(self, names: list[str]) -> Commit:
        """On the flusher thread: one fsync of ready/, then one enqueue of the group."""
        if names:
            try:
                self._spool.sync_ready()
            except OSError as exc:
                log.error("spool.sync_failed", spool=str(self._spool), error=str(exc))
                return Commit(False, False, f"spool flush failed: {exc.strerror or exc}")
        if time.monotonic() < self._redis_down_until:
            self._keep_unqueued(names)
            return Commit(True, False)
        pending = self._unqueued + names
        try:
            self._enqueue(pending)
        except RedisError as exc:
            # Until Redis has had time to come back, stores do not wait for it again.
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_AFTER_S
            log.warning("queue.enqueue_failed", objects=len(pending), error=str(exc))
            self._unqueued = []
            self._keep_unqueued(pending)
            return Commit(True, False)
        if self._unqueued:
            log.event("queue.enqueued_late", objects=len(self._unqueued))
        self._unqueued = []
        return Commit(True, True)

    def _keep_unqueued(self, names: list[str]) -> None:
        room = _MAX_UNQUEUED - len(self._unqueued)
        self._unqueued += names[:room]

    def close(self) -> None:
        """Wait for the threads: every store handed in is durable (or failed) after this."""
        self._file_sync.shutdown(wait=True)
        self._flusher.shutdown(wait=True)
