"""/metrics of `up`, `receive` and `work` (--metrics-port): every process of the command summed.

The command's parent process serves it. Before it starts a child it creates a fresh
PROMETHEUS_MULTIPROC_DIR, so the counters and histograms every child records (shared.metrics)
land in mmap files that the parent sums at each scrape, and a restarted child's counts are kept;
the folder is removed when the command stops. The gauges (queue depth, oldest unfiled age, free
space, live processes, Redis reachability) are read at scrape time from pacs_ingest.health.
"""

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from redis import Redis
from redis.exceptions import RedisError

from pacs_ingest.health import Snapshot, take_snapshot
from pacs_ingest.shared import log
from pacs_ingest.shared.options import COMMON, ConfigError, Option
from pacs_ingest.shared.queue import connect
from pacs_ingest.shared.spool import Spool

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class MetricsBind:
    host: str  # "" : every interface
    port: int


def metrics_bind(text: str) -> MetricsBind:
    """`--metrics-port [host:]port`; raises ValueError (exit 2) for anything else."""
    host, _, port = text.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid metrics port: {text!r} (e.g. 9464 or 127.0.0.1:9464)")
    return MetricsBind(host.strip("[]"), int(port))


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class _StateCollector:
    """The gauges, from one pacs_ingest.health snapshot per spool at each scrape."""

    def __init__(self, connection: Redis, queue: str, spools: Callable[[Redis], list[str]]):
        self._connection = connection
        self._queue = queue
        self._spools = spools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        try:
            spools = self._spools(self._connection)
        except RedisError:
            spools = []
        snapshots = [
            take_snapshot(Spool(s), self._connection, self._queue, now=now) for s in spools
        ]
        reachable = bool(snapshots) and snapshots[0].redis_error is None
        if not snapshots:
            with contextlib.suppress(RedisError):
                reachable = bool(self._connection.ping())
        up = _gauge("pacs_ingest_redis_up", "1 if Redis answered this scrape", [])
        up.add_metric([], int(reachable))
        yield up
        yield from self._queue_gauges(snapshots)
        yield from _spool_gauges(snapshots)

    def _queue_gauges(self, snapshots: list[Snapshot]) -> Iterator[GaugeMetricFamily]:
        depth = _gauge(
            "pacs_ingest_queue_depth",
            "Objects queued in the lanes of the served spools, not yet claimed by a drain",
            ["queue"],
        )
        busy = _gauge("pacs_ingest_jobs_in_progress", "Jobs workers are running", ["queue"])
        workers = _gauge("pacs_ingest_live_workers", "Worker processes beating", ["queue"])
        answered = [s for s in snapshots if s.redis_error is None]
        if answered:
            snapshot = answered[0]  # the queue's figures are the same in every snapshot
            depth.add_metric([self._queue], sum(s.queue_depth or 0 for s in answered))
            busy.add_metric([self._queue], snapshot.jobs_in_progress or 0)
            workers.add_metric([self._queue], len(snapshot.workers))
        yield from (depth, busy, workers)


_SPOOL_GAUGES = (
    ("pacs_ingest_ready_objects", "Objects waiting in ready/", lambda s: s.counts.ready_objects),
    ("pacs_ingest_ready_bytes", "Bytes waiting in ready/", lambda s: s.counts.ready_bytes),
    ("pacs_ingest_spool_failed_objects", "Objects in failed/", lambda s: s.counts.failed_objects),
    (
        "pacs_ingest_oldest_unfiled_age_seconds",
        "How long the oldest object in ready/ has waited (0: none waits)",
        lambda s: s.oldest_unfiled_age or 0.0,
    ),
    ("pacs_ingest_incoming_objects", "Objects being received", lambda s: s.incoming_objects),
    ("pacs_ingest_live_receivers", "Receiver processes beating", lambda s: len(s.receivers)),
)


def _spool_gauges(snapshots: list[Snapshot]) -> Iterator[GaugeMetricFamily]:
    for name, documentation, read in _SPOOL_GAUGES:
        family = _gauge(name, documentation, ["spool"])
        for snapshot in snapshots:
            if snapshot.counts is not None:
                family.add_metric([snapshot.spool], read(snapshot))
        yield family
    spool_free = _gauge("pacs_ingest_spool_free_bytes", "Free bytes for the spool", ["spool"])
    archive_free = _gauge(
        "pacs_ingest_archive_free_bytes", "Free bytes for the archive", ["spool", "archive"]
    )
    for snapshot in snapshots:
        if snapshot.spool_free_bytes is not None:
            spool_free.add_metric([snapshot.spool], snapshot.spool_free_bytes)
        for path, free in snapshot.archives:
            if free is not None:
                archive_free.add_metric([snapshot.spool, path], free)
    yield from (spool_free, archive_free)


@contextlib.contextmanager
def serving_metrics(
    bind: MetricsBind | None,
    redis_url: str,
    queue: str,
    spools: Callable[[Redis], list[str]],
) -> Iterator[None]:
    """Serve /metrics on `bind` while the block runs (start the children inside it); without a
    bind, make sure the children write no metrics files anywhere."""
    if bind is None:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        yield
        return
    folder = tempfile.mkdtemp(prefix="pacs-ingest-metrics-")
    os.environ[MULTIPROC_DIR_ENV] = folder
    try:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=folder)
        registry.register(_StateCollector(connect(redis_url), queue, spools))
        try:
            server, thread = start_http_server(bind.port, bind.host or "0.0.0.0", registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {bind.host or '*'}:{bind.port}: {exc.strerror or exc}"
            ) from exc
        log.event("metrics.serving", port=bind.port, host=bind.host or "*", folder=folder)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
    finally:
        os.environ.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


METRICS_PORT_ROW = Option(
    ("--metrics-port",),
    "serve Prometheus metrics of all this command's processes on http://[host:]port/metrics "
    "(host: the address to listen on; default: every interface); off without it",
    COMMON,
    type=metrics_bind,
    env="PACS_INGEST_METRICS_PORT",
    metavar="[host:]port",
)
