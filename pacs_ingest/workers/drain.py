"""The drain job: file the waiting objects of one lane, a claimed batch at a time.

rq spends some twenty Redis round trips on each job it runs whatever the job does, so a job per
object (or per group commit) cannot keep up; one drain files many batches. A lane has one drain
at a time (shared.lane: its mark says whether it waits or runs), so its batches stay whole; a
drain that finds more than HELP_BACKLOG refs waiting after a full batch (it looks at most every
HELP_CHECK_S) asks for a helper, which files full batches only, so every idle worker joins in on
a long backlog and leaves once it is short. A drain whose lane runs empty waits up to LINGER_S
for more before it returns, so a steady stream costs rq's round trips once per burst rather
than once per push; and under light load it claims at most every GATHER_S, so that claims hold
more objects. What it files is settled (each folder that gained an entry fsynced once, then the
spool copies removed, the objects counted and the claims ended in one round trip) for several
claims together, up to SETTLE_S or SETTLE_MAX objects: many senders at once interleave their
series, so objects of one folder arrive in many claims, and an fsync per folder per claim would
cost nearly one per object. A drain returns to rq after DRAIN_BUDGET_S, so workers still
notice stop requests and rq's registries still show what runs; if objects remain, it enqueues
the next drain of the lane as it goes.

Each settled batch leaves the spool's counts (shared.spool_counts) and the filing metrics
(workers.filing_metrics) in one round trip.

Storage errors (disk full, archive root missing) give the unfiled refs back to the lane and put
the spool on hold (workers.backoff); recovery asks for a new drain once the hold is over. Any
other failure of an object counts an attempt (workers.attempts) and gives its ref back, until
the object has had its attempts and goes to failed/. A ref that is not of the form receivers
and reprocess write ("<bucket>/<name>") was pushed by someone else: it is dropped, logged, and
nothing it names is touched.
"""

import random
import re
import time
from functools import lru_cache

from rq import Queue, get_current_job
from rq.job import Job

from pacs_ingest.shared import log
from pacs_ingest.shared.filing import Filing
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.keys import hold_key, names_key
from pacs_ingest.shared.lane import (
    ask_for_helper,
    end_drain,
    ensure_drain,
    lane_filing,
    start_drain,
)
from pacs_ingest.shared.queue import ingest_queue
from pacs_ingest.shared.spool import Spool
from pacs_ingest.shared.spool_counts import count_leaving
from pacs_ingest.workers import filing_metrics, policy
from pacs_ingest.workers.attempts import Attempts
from pacs_ingest.workers.backoff import hold
from pacs_ingest.workers.claims import Claims
from pacs_ingest.workers.ingest import Filed, StorageUnavailable, file_counted
from pacs_ingest.workers.place import Settlement

BATCH = 64  # refs claimed at a time: a killed worker's claims wait for its lease to expire
DRAIN_BUDGET_S = 10.0
# How long an empty lane keeps its drain: longer than the receivers' push interval, short enough
# that another lane's drain waiting in rq's queue for this worker is not held up.
LINGER_S = 0.5
# Under light load, the least time between two claims of a drain: objects wait this much longer
# to be filed, and a claim holds the objects of several pushes.
GATHER_S = 0.05
# A batch stays open across claims for this long, or this many objects, at most: its spool
# copies, counts and claims wait that much longer, and each folder it filed into is fsynced once
# for all of them (objects of one series arrive in many claims when many senders interleave).
SETTLE_S = 0.5
SETTLE_MAX = 8 * BATCH
# Refs left waiting after a full batch beyond which a drain asks for a helper: one drain would
# take four batches' time to catch up.
HELP_BACKLOG = 4 * BATCH
# The least time between two looks at the backlog (a round trip each) by one drain.
HELP_CHECK_S = 0.5
# A ref as receivers and reprocess push it: a time bucket, then a spool name (shared.spool).
_REF = re.compile(r"[0-9]{1,20}/[0-9a-f]{32}")


@lru_cache(maxsize=256)
def _filing(spool: str, lane: str) -> Filing:
    return lane_filing(Spool(spool), lane)


def _plain_refs(lane: str, refs: list[str]) -> list[str]:
    """The refs of `refs` that name an object of the lane; the others are logged and dropped."""
    plain = [ref for ref in refs if _REF.fullmatch(ref)]
    if len(plain) < len(refs):
        bad = [ref for ref in refs if not _REF.fullmatch(ref)]
        log.warning("drain.ref_refused", lane=lane, refs=len(bad), first=f"{bad[0]!r:.200}")
    return plain


class _Batch:
    """The objects a drain has filed and not yet settled: claimed, linked into the archive, their
    spool copies and counts still to be dealt with once the folders they went into are fsynced.

    A batch stays open across several claims (up to SETTLE_S and SETTLE_MAX objects): objects of
    one folder often arrive in different claims (many senders at once, each in its own series),
    and each folder is fsynced once per settlement, not once per claim."""

    def __init__(self, spool: Spool, claims: Claims) -> None:
        worker = policy.current()
        self.spool = spool
        self.claims = claims
        self.attempts = Attempts(claims.connection, spool, worker.max_attempts)
        self.settlement = Settlement(worker.modes)
        self.opened_at = time.monotonic()
        self.refs: list[str] = []  # handled (filed, quarantined, gone); settled together
        self.done: list[Filed] = []  # their outcomes
        self.retry: list[str] = []  # to give back once the batch is settled

    def due(self) -> bool:
        """Whether the batch should be settled now rather than grow."""
        return (
            len(self.refs) + len(self.retry) >= SETTLE_MAX
            or time.monotonic() - self.opened_at >= SETTLE_S
        )


def _file_batch(batch: _Batch, lane: str, filing: Filing, refs: list[str]) -> bool:
    """File the claimed `refs` into the open `batch`, each object a counted attempt; False if
    the storage failed (the batch settled as far as it got, the unfinished refs given back, the
    spool held)."""
    rng = random.Random()
    refs = _plain_refs(lane, refs)
    for index, ref in enumerate(refs):
        try:
            filed = file_counted(
                batch.spool, f"{lane}/{ref}", filing, rng, batch.attempts, batch.settlement
            )
        except StorageUnavailable as exc:
            _settle_or_give_back(batch)
            batch.claims.give_back([*refs[index:], *batch.retry])
            hold(batch.claims.connection, str(batch.spool), str(exc))
            return False
        except BaseException:
            # Unfinished refs go back, the failing one last, so the lane carries on; rq records
            # the failure in its registry.
            _settle_or_give_back(batch)
            batch.claims.give_back([*refs[index + 1 :], *batch.retry, ref])
            raise
        if filed.outcome == "retry":
            batch.retry.append(ref)
        else:
            batch.refs.append(ref)
            batch.done.append(filed)
    return True


def _settle(batch: _Batch) -> bool:
    """Settle the open `batch`: make its placements durable, count them, end its claims and
    give back the objects to try again; False if the archive could not be made durable."""
    # Without refs to give back, the claims end in the round trip that counts the batch.
    if not _settle_or_give_back(batch, claims_done=not batch.retry):
        return False
    if batch.retry:
        batch.claims.give_back(batch.retry)
    return True


def _settle_or_give_back(batch: _Batch, *, claims_done: bool = False) -> bool:
    """Make the placements of the batch durable and count them (and, if `claims_done`, end the
    claims); if the archive cannot, give its refs all back (their spool copies are still there)
    and hold the spool."""
    done = batch.done
    try:
        batch.settlement.finish()
    except OSError as exc:
        batch.claims.give_back(batch.refs)
        batch.attempts.take_back_all([f.name for f in done if f.target is not None])
        hold(batch.claims.connection, str(batch.spool), f"archive: {exc.strerror or exc}")
        # Only the quarantined left ready/ (failed/ is fsynced as each goes there).
        _count(batch, [f for f in done if f.outcome == "quarantined"])
        return False
    _count(batch, done, claims_done=claims_done)
    return True


def _count(batch: _Batch, done: list[Filed], *, claims_done: bool = False) -> None:
    """Take the objects of `done` that left ready/ out of the spool's counts, forget their
    attempts (and end the claims if `claims_done`), and record the batch's metrics: one round
    trip."""
    filed = [f.spooled for f in done if f.spooled is not None and f.outcome != "quarantined"]
    failed = [f.spooled for f in done if f.spooled is not None and f.outcome == "quarantined"]
    now = time.time()
    if done or claims_done:
        with batch.claims.connection.pipeline(transaction=False) as pipe:
            if filed or failed:
                count_leaving(pipe, str(batch.spool), filed, failed, now=now)
            batch.attempts.forget([f.name for f in done], pipe)
            if claims_done:
                batch.claims.finish(pipe)
            pipe.execute()
    filing_metrics.batch_done(done, filed, now)


def drain(rq_job: Job, job: DrainJob) -> int:
    """Claim and file batches of `job.lane` until it is empty (for a helper: until a batch is
    not full) or DRAIN_BUDGET_S has passed; how many objects were handled."""
    connection = rq_job.connection
    rq_queue = ingest_queue(connection, rq_job.origin)
    worker = rq_job.worker_name or rq_job.id
    lane_drain = start_drain(connection, job.lane, rq_job.id, worker)
    try:
        handled, more = _drain_batches(rq_queue, job, worker, lane_drain=lane_drain)
    finally:
        if lane_drain:
            end_drain(connection, job.lane, worker)
    # Pushes made while this drain ran enqueued nothing: if they left refs, the next drain.
    if more and connection.llen(names_key(job.lane)):
        ensure_drain(rq_queue, job)
    return handled


def _drain_batches(
    rq_queue: Queue, job: DrainJob, worker: str, *, lane_drain: bool
) -> tuple[int, bool]:
    """The batches of one drain: how many objects were handled, and False if the spool went on
    hold (recovery asks for a drain once the hold is over)."""
    connection = rq_queue.connection
    spool = Spool(job.spool, policy.current().modes)
    filing = _filing(job.spool, job.lane)
    claims = Claims(connection, job.lane, worker, hold=hold_key(job.spool))
    deadline = time.monotonic() + DRAIN_BUDGET_S
    handled = 0
    next_look = 0.0  # time.monotonic() from which the backlog may be looked at again
    batch: _Batch | None = None  # filed, not yet settled
    while True:
        claimed_at = time.monotonic()
        # An open batch waits for nothing: a lane found empty settles it first.
        linger = min(LINGER_S, deadline - claimed_at) if lane_drain and batch is None else 0.0
        refs = claims.take(BATCH, wait_s=linger)
        if not refs:  # None: the spool is on hold; empty: so is the lane
            if not _settle_open(batch):
                return handled, False
            if refs is None or batch is None or not lane_drain:
                return handled, refs is not None
            batch = None
            continue  # the lane's drain lingers for more, as it would have
        next_look = _look_at_backlog(rq_queue, job, len(refs), claimed_at, next_look)
        batch = batch or _Batch(spool, claims)
        if not _file_batch(batch, job.lane, filing, refs):
            return handled, False
        handled += len(refs)
        now = time.monotonic()
        # A helper's claim not full: the lane's drain keeps up with a backlog this short.
        leaving = (len(refs) < BATCH and not lane_drain) or now > deadline
        if leaving or batch.due():
            batch, settled = None, _settle(batch)
            if not settled:
                return handled, False
        if leaving:
            if now > deadline:
                log.event("drain.returned", lane=job.lane, handled=handled)
            return handled, True
        _gather(len(refs), claimed_at)


def _settle_open(batch: _Batch | None) -> bool:
    return batch is None or _settle(batch)


def _look_at_backlog(
    rq_queue: Queue, job: DrainJob, claimed: int, claimed_at: float, next_look: float
) -> float:
    """After a full claim, at most every HELP_CHECK_S, ask for a helper if the drain is behind;
    when the backlog may be looked at next."""
    if claimed < BATCH or claimed_at < next_look:
        return next_look
    if rq_queue.connection.llen(names_key(job.lane)) > HELP_BACKLOG:
        ask_for_helper(rq_queue, job)
    return claimed_at + HELP_CHECK_S


def _gather(claimed: int, claimed_at: float) -> None:
    """Under light load (a claim not full), let GATHER_S pass between claims."""
    elapsed = time.monotonic() - claimed_at
    if claimed < BATCH and elapsed < GATHER_S:
        time.sleep(GATHER_S - elapsed)


def drain_job(payload: dict) -> None:
    """rq entry point (shared.jobs.DRAIN_FUNCTION)."""
    drain(get_current_job(), DrainJob.decode(payload))
