"""Group commit: each store is made durable as soon as its last byte is written, the stores that
become durable together share one fsync of their ready/ bucket and one Redis round trip, and
each is answered once it is durable.

Two threads do what blocks. The stores that complete in one turn of the event loop go to one of
them together (one wake-up, however many): it fsyncs their part files, closes them and renames
them into the lane's current bucket in ready/ (the other thread's fsyncs overlap on the disk),
then the bucket must be flushed: if no thread is flushing, this one does, for every store renamed
by then; if one is, the stores wait for the next flush, which whoever holds the flush next makes
for all who gathered meanwhile. Under load many stores share each flush; alone, a store pays for
exactly one. The thread that flushed answers the lap's stores with one wake-up of the event loop
and hands their refs to the enqueuer thread, which pushes all the refs handed to it since its
last round trip onto the lane in one.

A store is answered before its ref reaches Redis: the spool, not the queue, is the truth. The
process's writer mark on the bucket (shared.spool) stays until every ref it put there is pushed,
so a process killed in between leaves a bucket that recovery looks into. When Redis cannot take
refs, their buckets are marked as holding unqueued objects, and the refs are kept and pushed
with later ones, so a restarted Redis gets them within seconds. With --require-queue the answer
waits for the push, and says whether it happened.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from pacs_ingest.receiver import store_metrics
from pacs_ingest.receiver.store import PartFile
from pacs_ingest.shared import log
from pacs_ingest.shared.spool import ReadyObject, Spool

_REDIS_RETRY_AFTER_S = 2.0
_MAX_UNQUEUED = 100_000  # refs kept for a later push; beyond that recovery finds them
# Without --require-queue no answer waits for a push, so under load the enqueuer lets this long
# pass between round trips and each carries what gathered meanwhile: a round trip costs far more
# of a receiver's CPU than a ref, and a worker hardly notices a ref coming this much later.
_PUSH_INTERVAL_S = 0.025
# Threads making part files durable: enough for the stores of a busy process to overlap on the
# disk; more only adds threads contending for the GIL.
_FSYNC_THREADS = 2


@dataclass(frozen=True, slots=True)
class Commit:
    """One object's fate: `durable` once it is in ready/ and its bucket is flushed; `enqueued` if
    Redis took its ref, or None when the answer did not wait for Redis (no --require-queue);
    `error` says why it is not durable."""

    durable: bool
    enqueued: bool | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Store:
    part: PartFile
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Commit]


def _answer(stores: list[_Store], commits: list[Commit]) -> None:
    """On the event loop: tell the stores their fate."""
    for store, commit in zip(stores, commits, strict=True):
        if not store.future.done():
            store.future.set_result(commit)
    store_metrics.answered([store.part for store in stores], time.monotonic())


def _answer_all(stores: list[_Store], commit: Commit) -> None:
    if stores:
        stores[0].loop.call_soon_threadsafe(_answer, stores, [commit] * len(stores))


class GroupCommit:
    """The group commit of one receiver process into one lane. `enqueue(objects)` pushes their
    refs onto the lane, and adds them to the spool's counts, in one round trip (raising
    RedisError if it cannot); with `wait_for_queue` (--require-queue) stores are answered only
    after it. Stores are committed from one event loop."""

    def __init__(
        self,
        spool: Spool,
        lane: str,
        enqueue: Callable[[list[ReadyObject]], None],
        *,
        wait_for_queue: bool,
    ) -> None:
        self._spool = spool
        self._lane = lane
        self._enqueue = enqueue
        self._wait_for_queue = wait_for_queue
        self._arrived: list[_Store] = []  # committed in this turn of the loop; loop only
        # The stores of one turn each; None stops a thread.
        self._to_sync: queue.SimpleQueue[list[_Store] | None] = queue.SimpleQueue()
        self._syncers = [
            threading.Thread(target=self._run_syncer, name=f"fsync_{index}", daemon=True)
            for index in range(_FSYNC_THREADS)
        ]
        self._lock = threading.Lock()
        # In ready/ (as it is there), waiting for its flush; under _lock.
        self._renamed: list[tuple[_Store, ReadyObject]] = []
        self._flushing = False  # an fsync thread is flushing ready/; under _lock
        # Objects (and, with wait_for_queue, the stores to answer after them); None stops.
        self._to_enqueue: queue.SimpleQueue[tuple[list[ReadyObject], list[_Store]] | None] = (
            queue.SimpleQueue()
        )
        self._unqueued: list[ReadyObject] = []  # enqueuer only
        self._redis_down_until = 0.0  # enqueuer only
        self._last_push = 0.0  # enqueuer only: time.monotonic() of the last round trip
        self._enqueuer = threading.Thread(target=self._run_enqueuer, name="enqueuer", daemon=True)
        for thread in (*self._syncers, self._enqueuer):
            thread.start()

    def commit(self, part: PartFile, loop: asyncio.AbstractEventLoop) -> "asyncio.Future[Commit]":
        """Make `part` durable in ready/ and enqueue it; its Commit, once done (never fails), on
        `loop`, the running loop."""
        part.received_at = time.monotonic()
        store = _Store(part, loop, loop.create_future())
        if not self._arrived:
            loop.call_soon(self._hand_over)
        self._arrived.append(store)
        return store.future

    def _hand_over(self) -> None:
        """On the loop, once its turn is over: the stores that arrived in it go to a thread."""
        arrived, self._arrived = self._arrived, []
        if arrived:
            self._to_sync.put(arrived)

    def retry_unqueued(self) -> None:
        """Enqueue what Redis refused earlier, without waiting for a new store to bring it."""
        self._to_enqueue.put(([], []))

    def close(self) -> None:
        """Finish the stores being made durable, then stop the threads and the enqueuer. Called
        once no store is being committed."""
        self._hand_over()
        for _ in self._syncers:
            self._to_sync.put(None)
        for syncer in self._syncers:
            syncer.join()
        self._to_enqueue.put(None)
        self._enqueuer.join()
        self._spool.settled([], now=None)  # what is still owed keeps its mark, for recovery

    # -- the fsync threads -----------------------------------------------------------------------

    def _run_syncer(self) -> None:
        while (stores := self._to_sync.get()) is not None:
            renamed = [done for store in stores if (done := self._make_durable(store))]
            if not renamed:
                continue
            with self._lock:
                self._renamed += renamed
                if self._flushing:
                    continue  # the thread flushing now makes the next flush for these too
                self._flushing = True
            self._flush_while_renamed()

    def _make_durable(self, store: _Store) -> tuple[_Store, ReadyObject] | None:
        """fsync and rename one store's part file into ready/; None (and the store answered)
        if that failed."""
        try:
            return store, store.part.make_durable(self._spool, self._lane, now=time.time())
        except OSError as exc:
            store.part.discard()
            _answer_all([store], Commit(False, None, f"cannot spool: {exc.strerror or exc}"))
        except Exception as exc:  # a thread must outlive any one store
            store.part.discard()
            log.error("commit.failed", error=repr(exc))
            _answer_all([store], Commit(False, None, f"commit failed: {exc!r}"))
        return None

    def _flush_while_renamed(self) -> None:
        """Flush the buckets of every store renamed so far, lap after lap, until none waits."""
        while True:
            with self._lock:
                renamed, self._renamed = self._renamed, []
                if not renamed:
                    self._flushing = False
                    return
            lap = [store for store, _ in renamed]
            objects = [spooled for _, spooled in renamed]
            refs = [spooled.ref for spooled in objects]
            try:
                self._spool.sync_ready(refs)
            except OSError as exc:
                log.error("spool.sync_failed", spool=str(self._spool), error=str(exc))
                _answer_all(lap, Commit(False, None, f"spool flush failed: {exc.strerror or exc}"))
                self._give_up(refs)  # in ready/ all the same, perhaps: recovery looks
                continue
            store_metrics.durable([store.part for store in lap], time.monotonic())
            if self._wait_for_queue:
                self._to_enqueue.put((objects, lap))
            else:
                _answer_all(lap, Commit(True, None))
                self._to_enqueue.put((objects, []))

    # -- the enqueuer thread -------------------------------------------------------------------

    def _run_enqueuer(self) -> None:
        stopping = False
        while not stopping:
            batches = [self._to_enqueue.get()]
            gather = self._last_push + _PUSH_INTERVAL_S - time.monotonic()
            if gather > 0 and not self._wait_for_queue:
                time.sleep(gather)
            while not self._to_enqueue.empty():
                batches.append(self._to_enqueue.get())
            stopping = None in batches
            handed = [batch for batch in batches if batch is not None]
            objects = [item for batch_objects, _ in handed for item in batch_objects]
            stores = [store for _, batch_stores in handed for store in batch_stores]
            try:
                enqueued = self._enqueue_objects(objects)
            except Exception as exc:  # the enqueuer must outlive any one round trip
                log.error("commit.enqueue_crashed", error=repr(exc))
                enqueued = False
            _answer_all(stores, Commit(True, enqueued))

    def _enqueue_objects(self, objects: list[ReadyObject]) -> bool:
        """Push `objects` and any kept earlier; True if Redis took them."""
        if time.monotonic() < self._redis_down_until:
            self._keep_unqueued(objects)
            return False
        pending = self._unqueued + objects
        if not pending:
            self._spool.settled([], now=time.time())  # an idle tick: let old buckets go
            return True
        self._last_push = time.monotonic()
        try:
            self._enqueue(pending)
        except RedisError as exc:
            # Until Redis has had time to come back, stores do not wait for it again.
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_AFTER_S
            if not self._unqueued:  # one warning while Redis is away, not one per group
                log.warning("queue.enqueue_failed", objects=len(pending), error=str(exc))
            self._unqueued = []
            self._keep_unqueued(pending)
            return False
        if self._unqueued:
            log.event("queue.enqueued_late", objects=len(self._unqueued))
        self._unqueued = []
        self._spool.settled([item.ref for item in pending], now=time.time())
        return True

    def _keep_unqueued(self, objects: list[ReadyObject]) -> None:
        """Keep objects Redis did not take, after marking their buckets for recovery."""
        room = _MAX_UNQUEUED - len(self._unqueued)
        self._unqueued += objects[:room]
        self._give_up(
            [item.ref for item in objects[room:]], marked=[item.ref for item in objects[:room]]
        )

    def _give_up(self, refs: list[str], *, marked: Sequence[str] = ()) -> None:
        """Leave `refs` to recovery (and mark the buckets of `marked` too, for it to look)."""
        try:
            self._spool.mark_unqueued([*refs, *marked])
        except OSError as exc:
            log.error("spool.mark_failed", spool=str(self._spool), error=str(exc))
        self._spool.settled(refs, now=time.time())
