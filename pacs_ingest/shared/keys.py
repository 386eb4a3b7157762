"""Every Redis key pacs-ingest names (rq names its own), in one place.

The strings are part of what a running system has stored and of what a Redis ACL may grant
(`~pacs-ingest:*`): a name changed here orphans the data under the old one, so they change only
with a migration. The modules that own each key's contents say what is in it.
"""

SPOOLS_KEY = "pacs-ingest:spools"  # hash spool -> its sweep job (shared.jobs)
EPOCH_KEY = "pacs-ingest:epoch"  # when this Redis's data began (shared.lane)
HEARTBEATS_KEY = "pacs-ingest:heartbeats"  # set of the heartbeat keys (shared.heartbeat)
_LANE = "pacs-ingest:lane"


def heartbeat_key(role: str, host: str, pid: int) -> str:
    """Exists, with a TTL, while the process `pid` of `role` on `host` beats."""
    return f"pacs-ingest:heartbeat:{role}:{host}:{pid}"


def worker_lease_key(worker_name: str) -> str:
    """Exists while the rq worker process `worker_name` is alive (see workers.lease)."""
    return f"pacs-ingest:worker:{worker_name}"


def sweep_pending_key(spool: str) -> str:
    """Exists while a sweep of `spool` waits in the queue (the sweep deletes it as it starts)."""
    return f"pacs-ingest:sweep-pending:{spool}"


def sweep_lock_key(spool: str) -> str:
    """The name of the worker running a recovery pass over `spool`."""
    return f"pacs-ingest:sweep-lock:{spool}"


def counts_key(spool: str) -> str:
    """Hash of `spool`'s ready/ and failed/ counts (shared.spool_counts)."""
    return f"pacs-ingest:counts:{spool}"


def filed_key(spool: str, second: int) -> str:
    """Objects of `spool` filed in the Unix second `second`; short-lived."""
    return f"pacs-ingest:filed:{spool}:{second}"


def attempts_key(spool: str) -> str:
    """Hash of spool object name -> attempts to file it that failed or were cut short."""
    return f"pacs-ingest:attempts:{spool}"


def hold_key(spool: str) -> str:
    """Exists while `spool`'s archive is on hold after a storage failure (workers.backoff)."""
    return f"pacs-ingest:hold:{spool}"


def hold_delay_key(spool: str) -> str:
    """The length of `spool`'s last hold, so the next failure doubles it."""
    return f"pacs-ingest:hold-delay:{spool}"


def names_key(lane: str) -> str:
    """List of "<bucket>/<name>" references waiting in `lane`."""
    return f"{_LANE}:{lane}:names"


def drain_key(lane: str) -> str:
    """The mark of the drain of `lane`: its job's id while the job waits in rq's queue, then
    "running:" and its worker's name (see shared.lane); expires, so a lost drain is replaced."""
    return f"{_LANE}:{lane}:drain"


def drain_helper_key(lane: str) -> str:
    """The id of a helper drain job of `lane` waiting in rq's queue (the helper deletes it as it
    starts); expires, so a helper lost with its worker does not block the next one."""
    return f"{_LANE}:{lane}:drain-helper"


def verified_key(lane: str) -> str:
    """Hash bucket -> epoch: every object of that bucket had a queue entry in that epoch."""
    return f"{_LANE}:{lane}:verified"


def claimers_key(lane: str) -> str:
    """Set of worker names that may hold claims on `lane` (see workers.claims)."""
    return f"{_LANE}:{lane}:claimers"


def claims_key(lane: str, worker: str) -> str:
    """List of references of `lane` that worker `worker` took and has not finished."""
    return f"{_LANE}:{lane}:claims:{worker}"
