"""`pacs-ingest work`: N rq worker processes on the ingest queue.

Workers are rq SimpleWorkers: each job runs in the worker process itself. rq's default Worker
forks a child per job, which costs more than filing a whole batch of objects. Each process runs
only the jobs workers.guard lets through, within its workers.policy.

While Redis is unreachable a worker process stays up: it says so once, waits with a growing
pause and starts an rq worker again once Redis answers. (Exiting instead had the parent restart
it every second, each time with a traceback.)
"""

import argparse
import logging
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.utils import import_attribute

from pacs_ingest.shared import log, modes
from pacs_ingest.shared.exit_codes import ExitCode
from pacs_ingest.shared.heartbeat import Heartbeat
from pacs_ingest.shared.jobs import (
    DRAIN_FUNCTION,
    SWEEP_FUNCTION,
    OrjsonSerializer,
    enqueue_sweep,
    registered_spools,
)
from pacs_ingest.shared.modes import Modes
from pacs_ingest.shared.options import (
    COMMON,
    Option,
    OptionsError,
    dicom_int,
    from_options,
    positive,
)
from pacs_ingest.shared.processes import ProcessGroup, StopSignal, stop_all, supervise
from pacs_ingest.shared.queue import connect, ingest_queue
from pacs_ingest.workers import policy
from pacs_ingest.workers.guard import GuardedJob, GuardedWorker
from pacs_ingest.workers.lease import WorkerLease
from pacs_ingest.workers.redis_link import LONGEST_RETRY_S, RedisLink, random_jitter, retry_delay

# `work` spelled it --processes before `up` and `work` shared one row: both spellings stay.
WORKERS = Option(
    ("--workers", "--processes"),
    "worker processes",
    "processes",
    type=positive(dicom_int),
    default=2,
    metavar="n",
)
ROWS = (
    WORKERS,
    Option(
        ("--burst",),
        "exit once the queue is empty; with the exit status of a worker process that failed",
        "processes",
        kind="flag",
    ),
    Option(
        ("--spool-dir",),
        "without --redis-url: use the embedded server of the `pacs-ingest up` on this spool "
        "(it writes its URL to <spool-dir>/redis/url)",
        COMMON,
        type=str,
        metavar="path",
    ),
)
ALLOW_DIRECTORY = Option(
    ("--allow-directory",),
    "the only folders whose trees jobs may name as spool or archive root; a job naming "
    "another is refused (work: required; up: its --directory and --spool-dir, and these)",
    "filing",
    type=str,
    kind="multi",
    metavar="dir",
)
MAX_ATTEMPTS = Option(
    ("--max-attempts",),
    "attempts to file an object (failed or cut short by a crash or timeout) before it goes "
    "to failed/; storage outages do not count",
    "filing",
    type=positive(dicom_int),
    default=policy.DEFAULT_MAX_ATTEMPTS,
    metavar="n",
)
FILING_POLICY_ROWS = (ALLOW_DIRECTORY, MAX_ATTEMPTS)
ROWS = (*ROWS, *FILING_POLICY_ROWS, *modes.ROWS)


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    workers: int
    burst: bool
    redis_url: str
    queue: str
    log_level: str
    policy: policy.WorkerPolicy

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, own_directories: tuple[str, ...] = (), **derived: Any
    ) -> "WorkerSettings":
        """Settings from parsed options (and `derived`, for what the command has no option
        for); `own_directories` are allowed in any case (`up`'s spool and archive).
        OptionsError if no directory is allowed at all."""
        allowed = (*own_directories, *args.allow_directory)
        if not allowed:
            raise OptionsError(
                "missing --allow-directory: name the folders holding the spools and archive "
                "roots this worker may file (or set PACS_INGEST_ALLOW_DIRECTORY)"
            )
        worker_policy = policy.WorkerPolicy.of(
            allowed, from_options(Modes, args), args.max_attempts
        )
        return from_options(cls, args, policy=worker_policy, **derived)


class _RedisTrouble(logging.Filter):
    """Turns rq's log records about a lost Redis (each with a traceback, some once a second)
    into the link's one warning."""

    def __init__(self, link: RedisLink) -> None:
        super().__init__()
        self._link = link

    def filter(self, record: logging.LogRecord) -> bool:
        causes = [*(record.args if isinstance(record.args, tuple) else ())]
        if record.exc_info:
            causes.append(record.exc_info[1])
        for cause in causes:
            if isinstance(cause, RedisConnectionError | RedisTimeoutError):
                self._link.lost(str(cause))
                return False
        return True


class _IngestWorker(GuardedWorker):
    """workers.guard's SimpleWorker, remembering whether it was asked to stop (SIGTERM,
    SIGINT) rather than gave up on Redis."""

    stop_requested = False
    max_connection_wait_time = LONGEST_RETRY_S  # rq's own retry of a lost dequeue, 60 s otherwise

    def request_stop(self, signum: int, frame: Any) -> None:
        self.stop_requested = True
        super().request_stop(signum, frame)


def _work_until_redis_fails(settings: WorkerSettings, connection: Redis, link: RedisLink) -> bool:
    """Run one rq worker; True once it stopped for good (asked to, or --burst and done)."""
    worker = _IngestWorker(
        [ingest_queue(connection, settings.queue, job_class=GuardedJob)],
        connection=connection,
        serializer=OrjsonSerializer,
    )
    lease = WorkerLease(connection, worker.name, link)
    lease.start()
    heartbeat = Heartbeat(connect(settings.redis_url), "worker", queue=settings.queue)
    heartbeat.start()
    try:
        worker.work(burst=settings.burst, logging_level="WARNING", with_scheduler=False)
    except RedisError as exc:  # rq's own start-up or teardown, with Redis gone
        link.lost(str(exc))
    finally:
        heartbeat.stop()
        lease.stop()
    return worker.stop_requested or (settings.burst and not link.is_lost)


def _import_jobs() -> None:
    """Import the job functions as the process starts, not in its first job: with pydicom they
    take a few hundred milliseconds of CPU, which would hold up the first objects filed."""
    for function in (DRAIN_FUNCTION, SWEEP_FUNCTION):
        import_attribute(function)


def _worker_process(settings: WorkerSettings) -> None:
    log.configure(settings.log_level, role="worker")
    policy.install(settings.policy)
    _import_jobs()
    link = RedisLink(settings.redis_url)
    logging.getLogger("rq.worker").addFilter(_RedisTrouble(link))
    connection = connect(settings.redis_url, blocking=True)
    stop = StopSignal()
    failures = 0
    while not stop.is_set():
        stop.install()  # rq's handlers replace ours while it works
        try:
            connection.ping()
        except RedisError as exc:
            link.lost(str(exc))
            failures += 1
            stop.wait(retry_delay(failures, jitter=random_jitter()))
            continue
        failures = 0
        link.regained()
        if _work_until_redis_fails(settings, connection, link):
            return


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
        "worker", _worker_process, (settings,), settings.workers, restart=not settings.burst
    )
    group.start()
    return group


def work(settings: WorkerSettings) -> int:
    """Run the workers until stopped; with --burst until each has found the queue empty, then
    the exit status of one that failed (killed, or crashed), if one did."""
    stop = StopSignal().install()
    group = start_workers(settings)
    try:
        if not settings.burst:
            return supervise([group], stop)
        while not group.all_exited() and not stop.wait(0.2):
            continue
        return ExitCode.OK if stop.is_set() else group.exit_status()
    finally:
        stop_all([group])
