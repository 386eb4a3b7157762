"""The workers' metrics, recorded once per batch (shared.metrics): objects filed or dropped as
duplicates, how long each waited in ready/, and the placement attempts beyond the first. Objects
sent to failed/ are counted as they are quarantined (workers.ingest), by reason."""

from typing import Protocol

from shared.metrics import FILING_LATENCY, OBJECTS_FILED, RENAME_RETRIES
from shared.spool import ReadyObject


class Outcome(Protocol):
    """What a batch reports of each object (workers.ingest.Filed)."""

    outcome: str
    attempts: int


def batch_done(done: list[Outcome], filed: list[ReadyObject], now: float) -> None:
    """`done`: every object of the batch; `filed`: those that left ready/ for the archive (or
    as duplicates), at `now` (time.time())."""
    outcomes: dict[str, int] = {}
    retries = 0
    for result in done:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        retries += max(0, result.attempts - 1)
    for outcome in ("filed", "duplicate"):
        if count := outcomes.get(outcome):
            OBJECTS_FILED.labels(outcome).inc(count)
    if retries:
        RENAME_RETRIES.inc(retries)
    for spooled in filed:
        FILING_LATENCY.observe(max(0.0, now - spooled.mtime))
