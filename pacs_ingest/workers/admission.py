"""Admission of outside files into a spool lane, in batches: one fsync per bucket and one Redis
round trip per batch (the refs pushed and counted, shared.spool_counts), and nothing queued
before it is durable.

`reprocess` streams: each batch is queued as soon as it is full (or a second old), so workers file
while the walk goes on and memory holds one batch, whatever the size of the tree.
"""

import time
from dataclasses import dataclass

from rq import Queue

from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.lane import push
from pacs_ingest.shared.processes import StopSignal
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers.progress import Counts, ProgressReport

BATCH = 256
_BATCH_AGE_S = 1.0


class Admission:
    """Collects refs admitted into `job.lane`; makes them durable and queues them in batches."""

    def __init__(self, spool: Spool, rq_queue: Queue, job: DrainJob, counts: Counts) -> None:
        self._spool = spool
        self._rq_queue = rq_queue
        self._job = job
        self._counts = counts
        self._refs: list[str] = []
        self._oldest = 0.0

    def add(self, ref: str, *, now: float) -> None:
        """`ref` is in the lane (not yet fsynced); `now` is a time.monotonic() reading."""
        if not self._refs:
            self._oldest = now
        self._refs.append(ref)
        if len(self._refs) >= BATCH or now - self._oldest >= _BATCH_AGE_S:
            self.flush()

    def flush(self) -> None:
        if not self._refs:
            return
        self._spool.sync_ready(self._refs)
        counted = [item for ref in self._refs if (item := self._spool.ready_object(ref))]
        push(
            self._rq_queue,
            self._job,
            [ref.partition("/")[2] for ref in self._refs],
            now=time.time(),
            counted=counted,
        )
        self._spool.settled(self._refs, now=time.time())
        self._counts.enqueued += len(self._refs)
        self._refs.clear()


@dataclass(frozen=True, slots=True)
class Run:
    """What one `reprocess` run works with."""

    spool: Spool
    lane: str
    filing: Filing
    admission: Admission
    counts: Counts
    progress: ProgressReport
    stop: StopSignal
