"""`python -m pacs_ingest.healthcheck echo|worker`: is this container's part of the pipeline up?

The image's HEALTHCHECK and compose run it; it needs nothing the image does not already hold.

    echo     a C-ECHO to the receivers of this host, at the port and Called AE title of
             PACS_INGEST_BIND (as `-b`): the port listens, an association is accepted and the
             DIMSE layer answers, which an open port alone does not show.
    worker   Redis (REDIS_URL) answers and at least one worker process of this host is on the
             queue (PACS_INGEST_QUEUE) with a live lease: workers that were killed or lost
             Redis turn the check red within the lease's 15 s.

Exit 0 when healthy, 1 when not, 2 for a bad configuration; one line on stderr says why.
"""

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

from pynetdicom import AE
from pynetdicom.sop_class import Verification
from redis.exceptions import RedisError
from rq import Worker

from pacs_ingest.receiver.options import parse_bind
from pacs_ingest.shared.keys import worker_lease_key
from pacs_ingest.shared.queue import DEFAULT_QUEUE, connect, ingest_queue

HEALTHY, UNHEALTHY, BAD_CONFIGURATION = 0, 1, 2
_TIMEOUT_S = 5.0
_WILDCARDS = ("", "0.0.0.0", "::")


def check_echo(bind_text: str) -> str | None:
    """None if a C-ECHO at `bind_text` ([aet[@ip]:]port) succeeds, else why not."""
    bind = parse_bind(bind_text)
    host = "127.0.0.1" if bind.host in _WILDCARDS else bind.host
    ae = AE(ae_title="HEALTHCHECK")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = _TIMEOUT_S
    ae.connection_timeout = _TIMEOUT_S
    assoc = ae.associate(host, bind.port, ae_title=bind.ae_title or "ANY-SCP")
    if not assoc.is_established:
        return f"no association with {bind.ae_title or 'any AE'} at {host}:{bind.port}"
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if "Status" not in status or status.Status != 0:
        return f"C-ECHO at {host}:{bind.port} was not answered with Success"
    return None


def check_worker(redis_url: str, queue: str) -> str | None:
    """None if a worker process of this host serves `queue` and holds its lease, else why not."""
    connection = connect(redis_url)
    host = socket.gethostname()
    try:
        workers = Worker.all(queue=ingest_queue(connection, queue))
        ours = [w for w in workers if w.hostname == host]
        if any(connection.exists(worker_lease_key(w.name)) for w in ours):
            return None
    except RedisError as exc:
        return f"Redis: {exc}"
    return f"no live worker of host {host} on queue {queue!r}"


def _check(role: str) -> str | None:
    if role == "echo":
        return check_echo(os.environ["PACS_INGEST_BIND"])
    return check_worker(os.environ["REDIS_URL"], os.environ.get("PACS_INGEST_QUEUE", DEFAULT_QUEUE))


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("echo", "worker"):
        print("usage: python -m pacs_ingest.healthcheck echo|worker", file=sys.stderr)
        return BAD_CONFIGURATION
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    try:
        problem = _check(argv[0])
    except KeyError as exc:
        print(f"healthcheck: environment variable {exc} is not set", file=sys.stderr)
        return BAD_CONFIGURATION
    except argparse.ArgumentTypeError as exc:
        print(f"healthcheck: PACS_INGEST_BIND: {exc}", file=sys.stderr)
        return BAD_CONFIGURATION
    if problem is not None:
        print(f"healthcheck: unhealthy: {problem}", file=sys.stderr)
        return UNHEALTHY
    return HEALTHY


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
