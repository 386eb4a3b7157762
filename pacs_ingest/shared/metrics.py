"""The Prometheus metrics that receiver and worker processes record (prometheus-client).

With `--metrics-port`, the command creates a PROMETHEUS_MULTIPROC_DIR before it starts its children
(pacs_ingest.metrics_endpoint), so each process writes its values to mmap files there and the parent
sums them when scraped; without it they stay in process memory, unread. An update is a lock and a
write into a mapped page (about a microsecond); callers record per group commit or per batch where
they can. The gauges (queue depth, oldest unfiled age, free space) are read at scrape time by the
parent, not recorded here.

Calling AE titles are the peer's choice: at most MAX_AE_LABELS distinct titles per process get a
label of their own, the rest count as "other", so no sender can grow the metrics without bound.
"""

from prometheus_client import Counter, Histogram

MAX_AE_LABELS = 200
OTHER_AE = "other"

# Seconds; from sub-millisecond group commits up to a stalled disk or a long archive outage.
_STORE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_FILING_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)

ASSOCIATIONS_ACCEPTED = Counter(
    "pacs_ingest_associations_accepted", "Associations accepted", ["calling_ae"]
)
ASSOCIATIONS_REJECTED = Counter(
    "pacs_ingest_associations_rejected", "A-ASSOCIATE-RJ sent, by reason", ["reason"]
)
ASSOCIATIONS_ABORTED = Counter(
    "pacs_ingest_associations_aborted",
    "Established associations that ended without a release: by the receiver (A-ABORT sent), "
    "the peer (A-ABORT received) or lost (the connection closed)",
    ["by"],
)
OBJECTS_RECEIVED = Counter(
    "pacs_ingest_received_objects", "Objects made durable in the spool", ["calling_ae"]
)
BYTES_RECEIVED = Counter(
    "pacs_ingest_received_bytes", "Data set bytes made durable in the spool", ["calling_ae"]
)
STORE_LATENCY = Histogram(
    "pacs_ingest_store_latency_seconds",
    "From a C-STORE's last data set byte until the object is durable, and until it is answered",
    ["until"],
    buckets=_STORE_BUCKETS,
)
FILING_LATENCY = Histogram(
    "pacs_ingest_filing_latency_seconds",
    "From an object's arrival in ready/ (its mtime, so clocks of all hosts count) until filed",
    buckets=_FILING_BUCKETS,
)
OBJECTS_FILED = Counter(
    "pacs_ingest_filed_objects",
    "Objects that left ready/ for the archive: filed, or dropped as a duplicate",
    ["outcome"],
)
RENAME_RETRIES = Counter(
    "pacs_ingest_rename_retries", "Placement attempts beyond the first (--rename-retries)"
)
OBJECTS_QUARANTINED = Counter(
    "pacs_ingest_quarantined_objects", "Objects moved to failed/, by reason", ["reason"]
)

_ae_labels: set[str] = set()


def ae_label(calling_ae_title: str) -> str:
    """The label value for a calling AE title: itself, or "other" past MAX_AE_LABELS."""
    if calling_ae_title in _ae_labels:
        return calling_ae_title
    if len(_ae_labels) < MAX_AE_LABELS:
        _ae_labels.add(calling_ae_title)
        return calling_ae_title
    return OTHER_AE
