"""Claims: the references a worker has taken off a lane and not finished yet.

A drain moves a batch from the lane's list into its own claims list in one atomic step, so at
every instant a waiting reference is in exactly one of the two. When the batch is done the claims
list is deleted. A worker killed mid-batch leaves its claims list behind; once its lease has
expired (workers.lease), recovery moves the list back onto the lane, and objects already filed
from it are skipped as gone when they come round again (jobs are idempotent).
"""

from redis import Redis
from redis.client import Pipeline

from pacs_ingest.shared.keys import claimers_key, claims_key, names_key, worker_lease_key

# Move up to ARGV[1] refs from the head of the lane into the claims list; record the claimer.
# With a fourth key, the spool's hold (workers.backoff): while it exists, claim nothing, -1.
_CLAIM = """
if KEYS[4] and redis.call('EXISTS', KEYS[4]) == 1 then
  return -1
end
local refs = redis.call('LPOP', KEYS[1], ARGV[1])
if refs then
  redis.call('RPUSH', KEYS[2], unpack(refs))
  redis.call('SADD', KEYS[3], ARGV[2])
end
return refs
"""

# Put a claims list back at the head of the lane (its order kept) and forget the claimer.
_RELEASE = """
local refs = redis.call('LRANGE', KEYS[2], 0, -1)
for i = #refs, 1, -1 do
  redis.call('LPUSH', KEYS[1], refs[i])
end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return #refs
"""


class Claims:
    """One worker's claims on one lane; given the key of its spool's hold, none while it holds."""

    def __init__(
        self, connection: Redis, lane: str, worker: str, *, hold: str | None = None
    ) -> None:
        self.connection = connection
        self._worker = worker
        self._keys = [names_key(lane), claims_key(lane, worker), claimers_key(lane)]
        self._hold = [] if hold is None else [hold]
        self._claim = connection.register_script(_CLAIM)
        self._release = connection.register_script(_RELEASE)

    def take(self, count: int, *, wait_s: float = 0.0) -> list[str] | None:
        """Claim up to `count` refs ("<bucket>/<name>") from the head of the lane; if there are
        none, wait up to `wait_s` seconds for one. None if the spool is on hold (one round trip
        tells both)."""
        refs = self._claim([*self._keys, *self._hold], [count, self._worker])
        if refs == -1:
            return None
        if refs or wait_s <= 0:
            return [ref.decode() for ref in refs or ()]
        # Blocking: the first ref to arrive moves into the claims list in one step, as the
        # script moves a batch; the claimer is recorded before, so recovery can find it.
        self.connection.sadd(self._keys[2], self._worker)
        first = self.connection.blmove(self._keys[0], self._keys[1], wait_s, "LEFT", "RIGHT")
        if first is None:
            return []
        rest = self._claim(self._keys, [count - 1, self._worker]) if count > 1 else None
        return [first.decode(), *(ref.decode() for ref in rest or ())]

    def finish(self, pipe: Pipeline | None = None) -> None:
        """Every claimed ref is done (filed, quarantined or gone); in `pipe`, if given."""
        (pipe if pipe is not None else self.connection).delete(self._keys[1])

    def give_back(self, refs: list[str]) -> None:
        """Replace the claims by `refs` (the unfinished ones) and put them back on the lane."""
        with self.connection.pipeline() as pipe:
            pipe.delete(self._keys[1])
            if refs:
                pipe.rpush(self._keys[1], *refs)
            pipe.execute()
        self._release(self._keys, [self._worker])


def reclaim_dead(connection: Redis, lane: str) -> int:
    """Put the claims of workers whose lease expired back onto `lane`; how many refs."""
    release = connection.register_script(_RELEASE)
    moved = 0
    for raw in connection.smembers(claimers_key(lane)):
        worker = raw.decode()
        if not connection.exists(worker_lease_key(worker)):
            moved += int(
                release([names_key(lane), claims_key(lane, worker), claimers_key(lane)], [worker])
            )
    return moved
