"""The job record that travels from receivers to workers, and the one batched enqueue.

A job names the spooled objects it covers and carries every setting a worker needs to file them,
so one generic worker pool serves any number of receivers (and spools). The payload is JSON made
by orjson; rq stores it as the job's only argument.
"""

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline
from rq import Queue
from rq.job import Job

# The workers' entry points, named rather than imported: receivers never import workers.
INGEST_FUNCTION = "workers.ingest.ingest_job"
SWEEP_FUNCTION = "workers.recovery.sweep_job"

# A batch that cannot be filed in an hour is stuck on storage, not busy; the spool keeps the
# objects and the recovery sweep enqueues them again once rq records the failure.
JOB_TIMEOUT_S = 3600
FAILED_JOB_TTL_S = 7 * 24 * 3600
SWEEP_PENDING_TTL_S = 60
BATCH = 64  # objects per job when many are enqueued at once


class JobPayloadError(ValueError):
    """Raised when a job's payload is not a job record this version understands."""

    def __init__(self, message: str, payload: Any) -> None:
        super().__init__(f"{message}: {payload!r:.200}")
        self.payload = payload


class OrjsonSerializer:
    """rq serializer: JSON via orjson instead of pickle, so any language can read a job."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    @staticmethod
    def loads(data: bytes) -> Any:
        return orjson.loads(data)


# --duplicates, applied by workers.duplicates; the first is the reference's behaviour. The
# default keeps a different object beside the one at its path: nothing is overwritten unasked.
DUPLICATE_POLICIES = ("overwrite", "keep-existing", "keep-both", "quarantine-if-different")
DEFAULT_DUPLICATES = "keep-both"


@dataclass(frozen=True, slots=True)
class Filing:
    """Where and how a spool's objects are filed; named after dcm4che's options."""

    directory: str
    filepath: str | None
    rename_retries: int
    rename_retry_jitter: int  # milliseconds
    duplicates: str = DEFAULT_DUPLICATES  # see workers.duplicates


@dataclass(frozen=True, slots=True)
class IngestJob:
    """File the named objects of one spool's ready/ folder into `filing.directory`."""

    spool: str
    names: tuple[str, ...]
    filing: Filing

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, payload: Any) -> "IngestJob":
        try:
            return cls(
                spool=str(payload["spool"]),
                names=tuple(str(name) for name in payload["names"]),
                filing=decode_filing(payload["filing"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise JobPayloadError(f"not an ingest job ({exc})", payload) from exc


@dataclass(frozen=True, slots=True)
class SweepJob:
    """Re-enqueue the objects of `spool` that no live job covers (see workers.recovery)."""

    spool: str
    filing: Filing

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, payload: Any) -> "SweepJob":
        try:
            return cls(spool=str(payload["spool"]), filing=decode_filing(payload["filing"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise JobPayloadError(f"not a sweep job ({exc})", payload) from exc


def decode_filing(payload: Any) -> Filing:
    filepath = payload["filepath"]
    return Filing(
        directory=str(payload["directory"]),
        filepath=None if filepath is None else str(filepath),
        rename_retries=int(payload["rename_retries"]),
        rename_retry_jitter=int(payload["rename_retry_jitter"]),
        duplicates=str(payload.get("duplicates", DEFAULT_DUPLICATES)),
    )


SPOOLS_KEY = "pacs-ingest:spools"


def register_spool(connection: Redis, job: SweepJob) -> None:
    """Record `job.spool` and its filing, so a worker starting up can sweep it unasked."""
    connection.hset(SPOOLS_KEY, job.spool, orjson.dumps(job.encode()))


def registered_spools(connection: Redis) -> list[SweepJob]:
    return [SweepJob.decode(orjson.loads(raw)) for raw in connection.hvals(SPOOLS_KEY)]


def tracked_key(spool: str) -> str:
    """Hash of spool object name -> id of the job that covers it, per spool."""
    return f"pacs-ingest:tracked:{spool}"


def worker_lease_key(worker_name: str) -> str:
    """Exists while the rq worker process `worker_name` is alive (see workers.lease)."""
    return f"pacs-ingest:worker:{worker_name}"


def enqueue_ingest(queue: Queue, job: IngestJob, pipeline: Pipeline | None = None) -> Job:
    """Enqueue `job` and record which job covers each of its objects.

    Given a pipeline the commands are appended to it and the caller executes it; otherwise they
    run at once, together.
    """
    pipe = pipeline if pipeline is not None else queue.connection.pipeline()
    rq_job = queue.enqueue_call(
        INGEST_FUNCTION,
        args=(job.encode(),),
        timeout=JOB_TIMEOUT_S,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_S,
        description=f"ingest {len(job.names)} object(s) from {job.spool}",
        pipeline=pipe,
    )
    pipe.hset(tracked_key(job.spool), mapping=dict.fromkeys(job.names, rq_job.id))
    if pipeline is None:
        pipe.execute()
    return rq_job


def enqueue_names(queue: Queue, spool: str, filing: Filing, names: list[str]) -> None:
    """Enqueue ingest jobs for `names` of `spool`, BATCH at a time (sweeps, reprocess)."""
    for start in range(0, len(names), BATCH):
        enqueue_ingest(queue, IngestJob(spool, tuple(names[start : start + BATCH]), filing))


def sweep_pending_key(spool: str) -> str:
    """Exists while a sweep of `spool` waits in the queue (the sweep deletes it as it starts)."""
    return f"pacs-ingest:sweep-pending:{spool}"


def enqueue_sweep(queue: Queue, job: SweepJob) -> bool:
    """Enqueue a sweep of `job.spool` unless one is already waiting; True if enqueued.

    However many receivers share a spool, at most one sweep of it waits in the queue. The marker
    expires, so a sweep lost with a flushed Redis or stuck behind a long backlog is replaced.
    """
    if not queue.connection.set(sweep_pending_key(job.spool), 1, nx=True, ex=SWEEP_PENDING_TTL_S):
        return False
    queue.enqueue_call(
        SWEEP_FUNCTION,
        args=(job.encode(),),
        timeout=JOB_TIMEOUT_S,
        result_ttl=0,
        failure_ttl=FAILED_JOB_TTL_S,
        description=f"sweep {job.spool}",
    )
    return True


def registered_filing(connection: Redis, spool: str) -> Filing | None:
    """The filing a receiver of `spool` announced (None if none has yet)."""
    raw = connection.hget(SPOOLS_KEY, spool)
    return None if raw is None else SweepJob.decode(orjson.loads(raw)).filing
