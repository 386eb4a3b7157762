"""`pacs-ingest work`: N rq worker processes on the ingest queue.

Workers are rq SimpleWorkers: each job runs in the worker process itself. rq's default Worker
forks a child per job, which costs more than filing a whole batch of objects.
"""

import argparse
from dataclasses import dataclass

from redis.exceptions import RedisError
from rq import SimpleWorker

from shared import log
from shared.heartbeat import Heartbeat
from shared.jobs import OrjsonSerializer, enqueue_sweep, registered_spools
from shared.options import Option, dicom_int, positive
from shared.processes import ProcessGroup, StopSignal, stop_all, supervise
from shared.queue import connect, ingest_queue
from workers.lease import WorkerLease

_STOP_TIMEOUT_S = 13.0

ROWS = (
    Option(
        ("--processes",),
        "worker processes",
        "processes",
        type=positive(dicom_int),
        default=2,
        metavar="n",
        env="PACS_INGEST_WORKERS",
    ),
    Option(("--burst",), "exit once the queue is empty", "processes", kind="flag"),
)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int
    burst: bool
    redis_url: str
    queue: str
    log_level: str

    @classmethod
    def from_args(cls, args: argparse.Namespace, processes: int) -> "WorkerSettings":
        return cls(
            processes, getattr(args, "burst", False), args.redis_url, args.queue, args.log_level
        )


def _worker_process(settings: WorkerSettings) -> None:
    log.configure(settings.log_level, role="worker")
    connection = connect(settings.redis_url, blocking=True)
    worker = SimpleWorker(
        [ingest_queue(connection, settings.queue)],
        connection=connection,
        serializer=OrjsonSerializer,
    )
    lease = WorkerLease(connection, worker.name)
    lease.start()
    heartbeat = Heartbeat(connect(settings.redis_url), "worker", queue=settings.queue)
    heartbeat.start()
    try:
        worker.work(burst=settings.burst, logging_level="WARNING", with_scheduler=False)
    finally:
        heartbeat.stop()
        lease.stop()


def request_known_sweeps(redis_url: str, queue: str) -> None:
    """Sweep every spool a receiver has announced: recovers work left by dead workers even when
    no receiver runs."""
    rq_queue = ingest_queue(connect(redis_url), queue)
    try:
        for job in registered_spools(rq_queue.connection):
            enqueue_sweep(rq_queue, job)
    except RedisError as exc:
        log.warning("sweep.request_failed", error=str(exc))


def start_workers(settings: WorkerSettings) -> ProcessGroup:
    request_known_sweeps(settings.redis_url, settings.queue)
    group = ProcessGroup(
        "worker", _worker_process, (settings,), settings.processes, restart=not settings.burst
    )
    group.start()
    return group


def work(settings: WorkerSettings) -> int:
    stop = StopSignal().install()
    group = start_workers(settings)
    try:
        if not settings.burst:
            return supervise([group], stop)
        while not group.all_exited() and not stop.wait(0.2):
            continue
        return 0
    finally:
        stop_all([group], _STOP_TIMEOUT_S)
