"""The receiver's metrics, recorded once per group commit (shared.metrics): objects and bytes
made durable per calling AE title, and how long each store took from its last data set byte until
it was durable and until it was answered."""

from pacs_ingest.receiver.store import PartFile
from pacs_ingest.shared.metrics import BYTES_RECEIVED, OBJECTS_RECEIVED, STORE_LATENCY, ae_label

_UNTIL_DURABLE = STORE_LATENCY.labels("durable")
_UNTIL_ANSWERED = STORE_LATENCY.labels("answered")


def durable(parts: list[PartFile], now: float) -> None:
    """`parts` became durable at `now` (time.monotonic())."""
    by_title: dict[str, list[int]] = {}
    for part in parts:
        _UNTIL_DURABLE.observe(now - part.received_at)
        tally = by_title.get(part.calling_ae_title)
        if tally is None:
            by_title[part.calling_ae_title] = [1, part.size]
        else:
            tally[0] += 1
            tally[1] += part.size
    for title, (objects, size) in by_title.items():
        label = ae_label(title)
        OBJECTS_RECEIVED.labels(label).inc(objects)
        BYTES_RECEIVED.labels(label).inc(size)


def answered(parts: list[PartFile], now: float) -> None:
    """`parts` are answered at `now` (time.monotonic()), successfully or not."""
    for part in parts:
        _UNTIL_ANSWERED.observe(now - part.received_at)
