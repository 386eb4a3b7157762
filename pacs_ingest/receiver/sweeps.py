"""Ask the workers, every --sweep-interval seconds, to sweep this receiver's spool.

The sweep (workers.recovery) queues again whatever waits in ready/ without a queue entry: objects
stored while Redis was away or lost with its data, or claimed by a worker that died. Asking
repeatedly is what makes a restarted or flushed Redis, or a killed worker, cost no object and no
manual step.
"""

from redis.exceptions import RedisError
from rq import Queue

from pacs_ingest.shared import log
from pacs_ingest.shared.jobs import SweepJob, enqueue_sweep, register_spool
from pacs_ingest.shared.periodic import Periodic


class SweepScheduler:
    def __init__(self, rq_queue: Queue, job: SweepJob, interval_s: float) -> None:
        self._rq_queue = rq_queue
        self._job = job
        self._requests = Periodic("sweeps", interval_s, self._request)
        self._failing = False

    def start(self) -> None:
        self._requests.start()

    def stop(self) -> None:
        self._requests.stop()

    def _request(self) -> None:
        try:
            register_spool(self._rq_queue.connection, self._job)
            enqueue_sweep(self._rq_queue, self._job)
        except RedisError as exc:
            if not self._failing:  # one warning while Redis is away
                log.warning("sweep.request_failed", spool=self._job.spool, error=str(exc))
            self._failing = True
            return
        self._failing = False
