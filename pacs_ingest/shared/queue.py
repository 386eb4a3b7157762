"""The Redis connection and the rq queue that receivers and workers share."""

import re
from collections.abc import Iterable

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import StartedJobRegistry

from pacs_ingest.shared.jobs import OrjsonSerializer
from pacs_ingest.shared.keys import names_key

DEFAULT_QUEUE = "pacs-ingest"
_URL_PASSWORD = re.compile(r"(?<=://)([^/@?]*?):[^/@?]*@")
_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&]*")

# Short socket timeouts: a receiver waits on Redis before it answers a C-STORE, and must answer
# within a DICOM peer's patience even when Redis is gone (the spool already holds the object).
_SOCKET_TIMEOUT_S = 5.0


def connect(url: str, *, blocking: bool = False) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://); connects lazily, on first use.

    `blocking` clients (workers waiting on the queue) have no read timeout, since rq's blocking
    pop waits for minutes; TCP keep-alive still notices a dead server (a Unix socket's peer
    closing is seen at once).
    """
    tcp = {} if url.startswith("unix:") else {"socket_keepalive": True}
    return Redis.from_url(
        url,
        socket_timeout=None if blocking else _SOCKET_TIMEOUT_S,
        socket_connect_timeout=_SOCKET_TIMEOUT_S,
        health_check_interval=30,
        **tcp,
    )


def ingest_queue(
    connection: Redis, name: str = DEFAULT_QUEUE, *, job_class: type[Job] = Job
) -> Queue:
    return Queue(name, connection=connection, serializer=OrjsonSerializer, job_class=job_class)


def redacted(url: str) -> str:
    """`url` fit for a log line: any password in it replaced by ***."""
    return _QUERY_PASSWORD.sub("***", _URL_PASSWORD.sub(r"\1:***@", url))


def queue_depth(connection: Redis, lanes: Iterable[str]) -> int:
    """Refs waiting in `lanes` (shared.lane), not yet claimed by a drain: one LLEN per lane, in
    one round trip, whatever the backlog."""
    with connection.pipeline(transaction=False) as pipe:
        for lane in lanes:
            pipe.llen(names_key(lane))
        return sum(pipe.execute())


def jobs_in_progress(connection: Redis, name: str = DEFAULT_QUEUE) -> int:
    """Job executions that workers have started and not finished, as rq's registry lists them
    (a killed worker's stay until rq's own cleanup, at the latest after the job's timeout)."""
    return connection.zcard(StartedJobRegistry(name, connection=connection).key)
