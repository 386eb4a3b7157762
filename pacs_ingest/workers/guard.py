"""Which jobs a worker runs: pacs-ingest's own job functions, on allowed directories only.

rq imports and calls whatever function a job names, and also imports the callbacks it names and
sends its webhooks: anyone who can write to the Redis could make a worker run any importable
code. A job is therefore checked before rq resolves anything: it must name one of our two job
functions, with one JSON payload argument, no callbacks and no webhooks; its spool must be an
allowed directory (workers.policy), and so must the archive root of the lane a drain names (from
the lane's record in that spool). The refs a drain takes off its lane are checked as it takes
them (workers.drain). A refused job fails in rq with the reason, one `job.refused` line is
logged, and nothing it names is touched; the worker goes on with the next job.
"""

from typing import Any

from rq import SimpleWorker
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.utils import import_attribute

from pacs_ingest.shared import log
from pacs_ingest.shared.jobs import (
    DRAIN_FUNCTION,
    RENAMED_FUNCTIONS,
    SWEEP_FUNCTION,
    DrainJob,
    JobPayloadError,
    SweepJob,
)
from pacs_ingest.shared.lane import lane_filing
from pacs_ingest.shared.spool import Spool
from pacs_ingest.workers import policy

_PAYLOADS: dict[str, Any] = {DRAIN_FUNCTION: DrainJob, SWEEP_FUNCTION: SweepJob}
# Lane ids are 12 hex digits; anything much longer is no lane of ours (and one too long for the
# file system would fail as if the spool were unwell).
_MAX_NAME_BYTES = 128


class JobRefused(Exception):
    """Raised instead of resolving the function of a job this worker must not run."""


def _plain_name(name: str) -> bool:
    return (
        0 < len(name.encode(errors="replace")) <= _MAX_NAME_BYTES
        and "/" not in name
        and "\0" not in name
        and name not in (".", "..")
    )


def _current_name(func_name: Any) -> Any:
    return RENAMED_FUNCTIONS.get(func_name, func_name) if isinstance(func_name, str) else func_name


def _payload_refusal(func_name: str, args: Any, allowed: policy.WorkerPolicy) -> str | None:
    try:
        payload = _PAYLOADS[func_name].decode(args[0])
    except JobPayloadError as exc:
        return str(exc)
    if not allowed.allows(payload.spool):
        return f"directory {payload.spool} is outside the allowed directories"
    return _lane_refusal(payload, allowed) if isinstance(payload, DrainJob) else None


def _lane_refusal(job: DrainJob, allowed: policy.WorkerPolicy) -> str | None:
    if not _plain_name(job.lane):
        return f"lane {job.lane!r:.200} is not a lane name"
    try:
        directory = lane_filing(Spool(job.spool), job.lane).directory
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"lane {job.lane} of {job.spool} has no readable record ({exc})"
    if not allowed.allows(directory):
        return f"directory {directory} is outside the allowed directories"
    return None


def refusal(job: Job, allowed: policy.WorkerPolicy) -> str | None:
    """Why `job` must not run on this worker, or None if it may."""
    try:
        func_name, instance, args, kwargs = job.func_name, job.instance, job.args, job.kwargs
    except DeserializationError:
        return "payload is not JSON"
    if _current_name(func_name) not in _PAYLOADS:
        return f"function {func_name!r:.200} is not a pacs-ingest job"
    if instance is not None or kwargs or not isinstance(args, list | tuple) or len(args) != 1:
        return "a pacs-ingest job takes one payload argument and nothing else"
    callbacks = (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name)
    if any(callbacks) or job.webhooks:
        return "pacs-ingest jobs have no callbacks and no webhooks"
    return _payload_refusal(_current_name(func_name), args, allowed)


class GuardedJob(Job):
    """rq's Job, resolving its function only once `refusal` has let it run, and never running
    callbacks or webhooks (ours have none; a job naming some is refused)."""

    @property
    def func(self) -> Any:
        reason = refusal(self, policy.current())
        if reason is not None:
            log.error("job.refused", job=self.id, origin=self.origin, reason=reason)
            raise JobRefused(reason)
        return import_attribute(_current_name(self.func_name))

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        return None


class GuardedWorker(SimpleWorker):
    """rq's SimpleWorker on GuardedJobs; a refusal is logged once, as job.refused, without rq's
    traceback (rq still records the job as failed, with the reason)."""

    job_class = GuardedJob

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if not isinstance(exc_info[1], JobRefused):
            super().handle_exception(job, *exc_info)
