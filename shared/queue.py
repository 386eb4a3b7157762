"""The Redis connection and the rq queue that receivers and workers share."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis import Redis
from rq import Queue
from rq.job import Job

from shared.jobs import OrjsonSerializer

DEFAULT_QUEUE = "pacs-ingest"

# Short socket timeouts: a receiver waits on Redis before it answers a C-STORE, and must answer
# within a DICOM peer's patience even when Redis is gone (the spool already holds the object).
_SOCKET_TIMEOUT_S = 5.0


def connect(url: str, *, blocking: bool = False) -> Redis:
    """A client for `url` (redis://, rediss:// or unix://); connects lazily, on first use.

    `blocking` clients (workers waiting on the queue) have no read timeout, since rq's blocking
    pop waits for minutes; TCP keep-alive still notices a dead server.
    """
    return Redis.from_url(
        url,
        socket_timeout=None if blocking else _SOCKET_TIMEOUT_S,
        socket_connect_timeout=_SOCKET_TIMEOUT_S,
        socket_keepalive=True,
        health_check_interval=30,
    )


def redacted(url: str) -> str:
    """`url` fit for a log line: its password (redis://user:PASSWORD@host, or ?password=)
    replaced by ***."""
    base, question, query = url.partition("?")
    parts = urlsplit(base)
    if parts.password is not None:
        user, host = parts.username or "", parts.netloc.rpartition("@")[2]
        base = urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        safe = [(name, "***" if name == "password" else value) for name, value in pairs]
        query = urlencode(safe, safe="/*")
    return base + question + query


def ingest_queue(
    connection: Redis, name: str = DEFAULT_QUEUE, *, job_class: type[Job] = Job
) -> Queue:
    return Queue(name, connection=connection, serializer=OrjsonSerializer, job_class=job_class)
