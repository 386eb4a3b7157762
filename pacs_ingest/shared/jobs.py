"""The job records that travel from receivers to workers, and the filing settings.

Jobs name work, not objects: a drain job names a lane of a spool (shared.lane), whose waiting
objects sit in a Redis list and whose filing settings sit in the spool, so one generic worker
pool serves any number of receivers (and spools). The payload is JSON made by orjson; rq stores
it as the job's only argument.
"""

from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis import Redis
from rq import Queue

from pacs_ingest.shared.keys import SPOOLS_KEY, sweep_pending_key

# The workers' entry points, named rather than imported: receivers never import workers.
DRAIN_FUNCTION = "pacs_ingest.workers.drain.drain_job"
SWEEP_FUNCTION = "pacs_ingest.workers.recovery.sweep_job"
# The same entry points as versions before 0.2 named them (top-level `workers` package): jobs
# they left in a queue still run, as the function of today's name.
RENAMED_FUNCTIONS = {
    "workers.drain.drain_job": DRAIN_FUNCTION,
    "workers.recovery.sweep_job": SWEEP_FUNCTION,
}

# A drain that cannot file a batch in an hour is stuck on storage, not busy; the spool keeps the
# objects and recovery queues them again once rq records the failure.
JOB_TIMEOUT_S = 3600
FAILED_JOB_TTL_S = 7 * 24 * 3600
SWEEP_PENDING_TTL_S = 60


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
class DrainJob:
    """File waiting objects of one lane of `spool` (see shared.lane), a bounded batch at a time."""

    spool: str
    lane: str

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, payload: Any) -> "DrainJob":
        try:
            return cls(spool=str(payload["spool"]), lane=str(payload["lane"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise JobPayloadError(f"not a drain job ({exc})", payload) from exc


@dataclass(frozen=True, slots=True)
class SweepJob:
    """One recovery pass over `spool` (see workers.recovery)."""

    spool: str

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, payload: Any) -> "SweepJob":
        try:
            return cls(spool=str(payload["spool"]))
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


def register_spool(connection: Redis, job: SweepJob) -> None:
    """Record `job.spool`, so a worker starting up can sweep it unasked."""
    connection.hset(SPOOLS_KEY, job.spool, orjson.dumps(job.encode()))


def registered_spools(connection: Redis) -> list[SweepJob]:
    return [SweepJob.decode(orjson.loads(raw)) for raw in connection.hvals(SPOOLS_KEY)]


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
