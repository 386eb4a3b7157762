"""Take waiting ingest jobs off the queue, so one rq execution files many receivers' batches.

rq spends some twenty Redis round trips on each job it runs (registries, heartbeats, executions)
whatever the job does; receivers enqueue one job per group commit, often of a single object. When
jobs pile up, a running ingest job therefore takes the next waiting ones itself: it pops their ids
from the queue, re-points their objects' tracking at itself, deletes them and files their objects.
Nothing is lost if the worker dies meanwhile: the objects are still in ready/, tracked by a job
that is neither queued nor running, which the recovery sweep re-enqueues.
"""

from rq import Queue
from rq.job import Job

from shared.jobs import INGEST_FUNCTION, IngestJob, tracked_key
from workers import policy
from workers.guard import refusal


def take_waiting(rq_queue: Queue, running_job_id: str, max_jobs: int) -> list[IngestJob]:
    """Remove up to `max_jobs` waiting ingest jobs from the queue; return their payloads.

    Other kinds of job (sweeps), and jobs this worker must not run (workers.guard), go back to
    the head of the queue: rq runs the ones, and refuses the others with the reason.
    """
    allowed = policy.current()
    connection = rq_queue.connection
    ids = connection.lpop(rq_queue.key, max_jobs)
    if not ids:
        return []
    taken: list[tuple[Job, IngestJob]] = []
    others: list[str] = []
    for job_id, job in zip(
        ids,
        Job.fetch_many([i.decode() for i in ids], connection, serializer=rq_queue.serializer),
        strict=True,
    ):
        if job is None:
            continue  # deleted while it waited
        if refusal(job, allowed) is not None or job.func_name != INGEST_FUNCTION:
            others.append(job_id)
            continue
        taken.append((job, IngestJob.decode(job.args[0])))
    with connection.pipeline() as pipe:
        if others:
            pipe.lpush(rq_queue.key, *reversed(others))
        for job, ingest in taken:
            pipe.hset(
                tracked_key(ingest.spool), mapping=dict.fromkeys(ingest.names, running_job_id)
            )
            job.delete(pipeline=pipe, remove_from_queue=False)
        pipe.execute()
    return [ingest for _, ingest in taken]
