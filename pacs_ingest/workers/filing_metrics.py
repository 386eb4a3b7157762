"""The workers' metrics, recorded once per batch (shared.metrics): objects filed or dropped as
duplicates, and how long each waited in ready/. The rare events are counted where they happen:
objects sent to failed/ as they are quarantined (workers.ingest), rename retries as they are
made (workers.place)."""

from typing import Protocol

from pacs_ingest.shared.metrics import FILING_LATENCY, OBJECTS_FILED
from pacs_ingest.shared.spool import ReadyObject


class Outcome(Protocol):
    """What a batch reports of each object (workers.ingest.Filed)."""

    outcome: str


def batch_done(done: list[Outcome], filed: list[ReadyObject], now: float) -> None:
    """`done`: every object of the batch; `filed`: those that left ready/ for the archive (or
    as duplicates), at `now` (time.time())."""
    outcomes: dict[str, int] = {}
    for result in done:
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
    for outcome in ("filed", "overwritten", "duplicate"):
        if count := outcomes.get(outcome):
            OBJECTS_FILED.labels(outcome).inc(count)
    for spooled in filed:
        FILING_LATENCY.observe(max(0.0, now - spooled.mtime))
