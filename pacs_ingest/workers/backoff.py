"""Back off from an archive that cannot take objects (full, read-only, unmounted, failing).

The first storage failure for a spool puts it on hold for 5 s; each failure while the trouble
lasts doubles the hold, up to 5 minutes. During a hold, drains of that spool's lanes give their
claims back and return at once, and recovery asks for no drain: the objects wait in ready/,
durable and queued, and the first recovery pass after the hold asks for a drain again. Nothing is
quarantined for a full disk.
"""

from redis import Redis

from pacs_ingest.shared import log
from pacs_ingest.shared.keys import hold_delay_key, hold_key

FIRST_HOLD_S = 5
LONGEST_HOLD_S = 300
_REMEMBER_S = 2 * LONGEST_HOLD_S  # a failure after this much calm starts short again


def on_hold(connection: Redis, spool: str) -> bool:
    return bool(connection.exists(hold_key(spool)))


def hold(connection: Redis, spool: str, error: str) -> int:
    """Put `spool` on hold after a storage failure; the hold in seconds."""
    previous = connection.get(hold_delay_key(spool))
    delay = min(2 * int(previous), LONGEST_HOLD_S) if previous else FIRST_HOLD_S
    with connection.pipeline() as pipe:
        pipe.set(hold_delay_key(spool), delay, ex=_REMEMBER_S)
        pipe.set(hold_key(spool), 1, ex=delay)
        pipe.execute()
    log.warning("ingest.storage_unavailable", spool=spool, error=error, retry_in_s=delay)
    return delay
