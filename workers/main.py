"""`pacs-ingest work`: N rq worker processes on the ingest queue.

Workers are rq SimpleWorkers: each job runs in the worker process itself. rq's default Worker
forks a child per job, which costs more than filing a whole batch of objects. Each process runs
only the jobs workers.guard lets through, within its workers.policy.
"""

import argparse
from dataclasses import dataclass

from redis.exceptions import RedisError

from shared import log, modes
from shared.jobs import OrjsonSerializer, enqueue_sweep, registered_spools
from shared.options import Option, OptionsError, dicom_int, positive
from shared.processes import ProcessGroup, StopSignal, stop_all, supervise
from shared.queue import connect, ingest_queue
from workers import policy
from workers.guard import GuardedJob, GuardedWorker
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
ALLOW_DIRECTORY = Option(
    ("--allow-directory",),
    "the only folders whose trees jobs may name as spool or archive root; a job naming "
    "another is refused (work: required; up: its --directory and --spool-dir, and these)",
    "filing",
    type=str,
    kind="multi",
    metavar="dir",
    env="PACS_INGEST_ALLOW_DIRECTORY",
)
MAX_ATTEMPTS = Option(
    ("--max-attempts",),
    "attempts to file an object (failed or cut short by a crash or timeout) before it goes "
    "to failed/; storage outages do not count",
    "filing",
    type=positive(dicom_int),
    default=policy.DEFAULT_MAX_ATTEMPTS,
    metavar="n",
    env="PACS_INGEST_MAX_ATTEMPTS",
)
FILING_POLICY_ROWS = (ALLOW_DIRECTORY, MAX_ATTEMPTS)
ROWS = (*ROWS, *FILING_POLICY_ROWS, *modes.ROWS)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    processes: int
    burst: bool
    redis_url: str
    queue: str
    log_level: str
    policy: policy.WorkerPolicy

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, processes: int, own_directories: tuple[str, ...] = ()
    ) -> "WorkerSettings":
        """Settings from parsed options; `own_directories` are allowed in any case (`up`'s spool
        and archive). OptionsError if no directory is allowed at all."""
        allowed = (*own_directories, *args.allow_directory)
        if not allowed:
            raise OptionsError(
                "missing --allow-directory: name the folders holding the spools and archive "
                "roots this worker may file (or set PACS_INGEST_ALLOW_DIRECTORY)"
            )
        return cls(
            processes,
            getattr(args, "burst", False),
            args.redis_url,
            args.queue,
            args.log_level,
            policy.WorkerPolicy.of(allowed, modes.modes_from_args(args), args.max_attempts),
        )


def _worker_process(settings: WorkerSettings) -> None:
    log.configure(settings.log_level, role="worker")
    policy.install(settings.policy)
    connection = connect(settings.redis_url, blocking=True)
    worker = GuardedWorker(
        [ingest_queue(connection, settings.queue, job_class=GuardedJob)],
        connection=connection,
        serializer=OrjsonSerializer,
    )
    lease = WorkerLease(connection, worker.name)
    lease.start()
    try:
        worker.work(burst=settings.burst, logging_level="WARNING", with_scheduler=False)
    finally:
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
