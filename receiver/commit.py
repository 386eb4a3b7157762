"""Group commit: the stores that finish together are made durable together, share one fsync of
ready/ and one Redis round trip, and each is answered once it is durable.

A store's part file is fsynced, closed and renamed into ready/ by a small thread pool as soon as
its last byte is written: fsyncs of different files overlap on the disk, so a store does not
wait for the ones before it. One thread per receiver process, the flusher, then takes the stores
that finished together as a group: it waits for their files, fsyncs ready/ once, answers them,
and enqueues the group's names in one round trip. The event loop hands it a group when it is
idle and is handed the results back, so a group costs one wake-up each way however many stores it
holds, and the loop never waits on a disk or on Redis. While the flusher works, the stores
finishing meanwhile gather for the next group.

A store is answered before its name reaches Redis: the spool, not the queue, is the truth, and a
name the receiver fails to enqueue (Redis away, the process killed) is found by the recovery
sweep. With --require-queue the answer waits for the enqueue, and says whether it happened.
When Redis cannot take a group, its names are kept and enqueued with a later group, so a
restarted Redis gets them within seconds.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from redis.exceptions import RedisError

from receiver.store import PartFile
from shared import log
from shared.spool import Spool

_REDIS_RETRY_AFTER_S = 2.0
_MAX_UNQUEUED = 100_000  # names kept for a later enqueue; beyond that the sweep finds them
# Part files made durable at once: enough for the stores of a busy process to overlap on the
# disk; more only adds threads.
_FSYNC_THREADS = 4


@dataclass(frozen=True, slots=True)
class Commit:
    """One object's fate: `durable` once it is in ready/ and ready/ is flushed; `enqueued` if
    Redis took its name, or None when the answer did not wait for Redis (no --require-queue);
    `error` says why it is not durable."""

    durable: bool
    enqueued: bool | None
    error: str = ""


# A store in a group: its part file, the pool's work making it durable (an error message, or ""
# once it is in ready/), and the future its association waits on.
_Group = list[tuple[PartFile, "Future[str]", asyncio.Future[Commit]]]


class GroupCommit:
    """The group commit of one receiver process. `enqueue(names)` puts one group's names on
    the queue in one round trip (raising RedisError if it cannot); with `wait_for_queue`
    (--require-queue) stores are answered only after it."""

    def __init__(
        self, spool: Spool, enqueue: Callable[[list[str]], None], *, wait_for_queue: bool
    ) -> None:
        self._spool = spool
        self._enqueue = enqueue
        self._wait_for_queue = wait_for_queue
        self._pool = ThreadPoolExecutor(_FSYNC_THREADS, thread_name_prefix="fsync")
        self._gathering: _Group = []  # event loop only
        self._flushing = False  # event loop only: the flusher has a group
        self._groups: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, _Group] | None] = (
            queue.SimpleQueue()
        )
        self._unqueued: list[str] = []  # flusher only
        self._redis_down_until = 0.0  # flusher only
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def commit(self, part: PartFile) -> "asyncio.Future[Commit]":
        """Make `part` durable in ready/ and enqueue it; its Commit, once done (never fails)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Commit] = loop.create_future()
        self._gathering.append((part, self._pool.submit(self._make_durable, part), future))
        if not self._flushing:
            self._hand_over(loop)
        return future

    def retry_unqueued(self) -> None:
        """Enqueue what Redis refused earlier, without waiting for a new store to bring it."""
        if not self._flushing:
            self._hand_over(asyncio.get_running_loop())

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        group, self._gathering = self._gathering, []
        self._flushing = True
        self._groups.put((loop, group))

    def _answer(self, group: _Group, commits: list[Commit]) -> None:
        """On the event loop: tell the group's stores their fate."""
        for (_, _, future), commit in zip(group, commits, strict=True):
            if not future.done():
                future.set_result(commit)

    def _flushed(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the event loop: the flusher is free; hand over the next group, if any."""
        self._flushing = False
        if self._gathering:
            self._hand_over(loop)

    def close(self) -> None:
        """Finish the group being flushed, then stop the flusher and the pool."""
        self._groups.put(None)
        self._thread.join()
        self._pool.shutdown()

    # -- the pool ------------------------------------------------------------------------------

    def _make_durable(self, part: PartFile) -> str:
        """fsync `part` and move it into ready/; "" or why it could not be."""
        try:
            part.make_durable(self._spool)
        except OSError as exc:
            part.discard()
            return f"cannot spool: {exc.strerror or exc}"
        return ""

    # -- the flusher thread --------------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._groups.get()) is not None:
            loop, group = item
            try:
                self._flush(loop, group)
            except Exception as exc:  # the flusher must outlive any one group
                log.error("commit.failed", error=repr(exc))
                failed = Commit(False, None, f"commit failed: {exc!r}")
                loop.call_soon_threadsafe(self._answer, group, [failed] * len(group))
            loop.call_soon_threadsafe(self._flushed, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop, group: _Group) -> None:
        errors = [durable.result() for _, durable, _ in group]
        ready = [part.name for (part, _, _), error in zip(group, errors, strict=True) if not error]
        if ready:
            try:
                self._spool.sync_ready()
            except OSError as exc:
                log.error("spool.sync_failed", spool=str(self._spool), error=str(exc))
                reason = f"spool flush failed: {exc.strerror or exc}"
                errors = [error or reason for error in errors]
                ready = []
        enqueued = self._enqueue_group(ready) if self._wait_for_queue else None
        commits = [
            Commit(False, None, error) if error else Commit(True, enqueued) for error in errors
        ]
        loop.call_soon_threadsafe(self._answer, group, commits)
        if not self._wait_for_queue:
            self._enqueue_group(ready)

    def _enqueue_group(self, names: list[str]) -> bool:
        """Enqueue `names` and any kept earlier; True if Redis took them."""
        if time.monotonic() < self._redis_down_until:
            self._keep_unqueued(names)
            return False
        pending = self._unqueued + names
        if not pending:
            return True
        try:
            self._enqueue(pending)
        except RedisError as exc:
            # Until Redis has had time to come back, stores do not wait for it again.
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_AFTER_S
            log.warning("queue.enqueue_failed", objects=len(pending), error=str(exc))
            self._unqueued = []
            self._keep_unqueued(pending)
            return False
        if self._unqueued:
            log.event("queue.enqueued_late", objects=len(self._unqueued))
        self._unqueued = []
        return True

    def _keep_unqueued(self, names: list[str]) -> None:
        room = _MAX_UNQUEUED - len(self._unqueued)
        self._unqueued += names[:room]
