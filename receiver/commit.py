"""Group commit: the stores that finish together are made durable together, share one fsync of
ready/ and one Redis round trip, and each is answered only once all of that is done.

One thread per receiver process, the flusher, does everything that blocks, a group at a time:
fsync and close each part file and rename it into ready/, fsync ready/ once, enqueue the group's
names in one pipeline. The event loop hands it a group when it is idle and is handed the results
back, so a group costs one wake-up each way however many stores it holds, and the loop never
waits on a disk or on Redis. While the flusher works, the stores finishing meanwhile gather for
the next group: under load many stores share each flush; alone, a store pays for exactly one.

When Redis cannot take a group, its objects are durable all the same (the sender gets Success
unless --require-queue); their names are kept and enqueued with a later group, so a restarted
Redis gets them within seconds, and the recovery sweep is the backstop for the rest.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from receiver import store_metrics
from receiver.store import PartFile
from shared import log
from shared.spool import ReadyObject, Spool

_REDIS_RETRY_AFTER_S = 2.0
_MAX_UNQUEUED = 100_000  # names kept for a later enqueue; beyond that the sweep finds them


@dataclass(frozen=True, slots=True)
class Commit:
    """One object's fate: `durable` once it is in ready/ and ready/ is flushed, `enqueued` if
    Redis took its name; `error` says why it is not durable."""

    durable: bool
    enqueued: bool
    error: str = ""


_Group = list[tuple[PartFile, asyncio.Future[Commit]]]


class GroupCommit:
    """The group commit of one receiver process. `enqueue(objects)` puts one group's objects
    on the queue, and into the spool's counts, in one round trip (raising RedisError if it
    cannot)."""

    def __init__(self, spool: Spool, enqueue: Callable[[list[ReadyObject]], None]) -> None:
        self._spool = spool
        self._enqueue = enqueue
        self._gathering: _Group = []  # event loop only
        self._flushing = False  # event loop only: the flusher has a group
        self._groups: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, _Group] | None] = (
            queue.SimpleQueue()
        )
        self._unqueued: list[ReadyObject] = []  # flusher only
        self._redis_down_until = 0.0  # flusher only
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def commit(self, part: PartFile) -> "asyncio.Future[Commit]":
        """Make `part` durable in ready/ and enqueue it; its Commit, once done (never fails)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Commit] = loop.create_future()
        part.received_at = time.monotonic()
        self._gathering.append((part, future))
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

    def _flushed(self, loop: asyncio.AbstractEventLoop, group: _Group, commits: list) -> None:
        """On the event loop: answer the group's stores; hand over the next group, if any."""
        for (_, future), commit in zip(group, commits, strict=True):
            if not future.done():
                future.set_result(commit)
        store_metrics.answered([part for part, _ in group], time.monotonic())
        self._flushing = False
        if self._gathering:
            self._hand_over(loop)

    def close(self) -> None:
        """Finish the group being flushed, then stop the flusher."""
        self._groups.put(None)
        self._thread.join()

    # -- the flusher thread --------------------------------------------------------------------

    def _run(self) -> None:
        while (item := self._groups.get()) is not None:
            loop, group = item
            try:
                commits = self._flush([part for part, _ in group])
            except Exception as exc:  # the flusher must outlive any one group
                log.error("commit.failed", error=repr(exc))
                commits = [Commit(False, False, f"commit failed: {exc!r}")] * len(group)
            loop.call_soon_threadsafe(self._flushed, loop, group, commits)

    def _flush(self, parts: list[PartFile]) -> list[Commit]:
        commits: list[Commit | None] = []
        ready = []
        for part in parts:
            try:
                part.make_durable(self._spool)
            except OSError as exc:
                part.discard()
                commits.append(Commit(False, False, f"cannot spool: {exc.strerror or exc}"))
                continue
            commits.append(None)  # decided below, with the group
            ready.append(part)
        if ready:
            try:
                self._spool.sync_ready()
            except OSError as exc:
                log.error("spool.sync_failed", spool=str(self._spool), error=str(exc))
                failed = Commit(False, False, f"spool flush failed: {exc.strerror or exc}")
                return [commit or failed for commit in commits]
            store_metrics.durable(ready, time.monotonic())
        group = self._enqueue_group([part.spooled for part in ready if part.spooled])
        return [commit or group for commit in commits]

    def _enqueue_group(self, objects: list[ReadyObject]) -> Commit:
        if time.monotonic() < self._redis_down_until:
            self._keep_unqueued(objects)
            return Commit(True, False)
        pending = self._unqueued + objects
        if not pending:
            return Commit(True, True)
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

    def _keep_unqueued(self, objects: list[ReadyObject]) -> None:
        room = _MAX_UNQUEUED - len(self._unqueued)
        self._unqueued += objects[:room]
