"""Attempts to file each object, so that one that can never be filed ends in failed/, not in a loop.

An object whose filing fails in a way that is not the storage being unwell (an unexpected error,
a worker killed or a job timed out while on it) stays in ready/ and is tried again by a later
job; after `limit` attempts it goes to failed/ with the reason `too many attempts` and the last
error. Attempts are counted twice:

- in the spool, by a mark made *before* each attempt, so an attempt cut short (SIGKILL, job
  timeout, host lost) counts too: the next attempt finds the mark of one with no outcome and
  names that as the last error. The first attempt's mark is a hard link attempts/<name> to the
  object (one directory entry, no new file: on the machine this was measured on, creating a
  file cost 60-200 µs of CPU, a link 12 µs); where links are not allowed (protected_hardlinks
  and another user's object, a file system without them) it is the record below. From the
  second attempt on, attempts/<name>.json holds the number of attempts begun and how the last
  one ended. The marks survive Redis's loss (restart without persistence, flush).
- in Redis, a hash per spool (name -> attempts that failed or were cut short), for status and
  metrics, and in case a mark is lost. It is written when an attempt is known to have failed:
  at once for an error, at the next attempt for one cut short. A first attempt, by far the most
  common, costs no Redis round trip.

An attempt's number is one more than the larger of the two counts. An attempt that ended in
StorageUnavailable is taken back: outages never make an object poison. The marks are not fsynced:
they stop loops, they do not guard objects; a host crash can forget the latest marks, which costs
a few more attempts at most. A filed or quarantined object's marks are removed; the recovery
sweep removes what a crash left behind.
"""

import contextlib
import errno
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from redis import Redis
from redis.client import Pipeline

from pacs_ingest.shared.keys import attempts_key
from pacs_ingest.shared.modes import make_dir
from pacs_ingest.shared.spool import Spool

# link(2) refused for this object or on this file system: mark the attempt with a record.
_NO_LINK = frozenset({errno.EPERM, errno.EACCES, errno.EMLINK, errno.EOPNOTSUPP, errno.ENOTSUP})


@dataclass(frozen=True, slots=True)
class Attempt:
    name: str
    number: int  # 1 for the first attempt
    previous_error: str | None  # how the attempt before this one ended, if there was one


class Attempts:
    """The attempts of one spool's objects; `limit` attempts at most per object."""

    def __init__(self, connection: Redis, spool: Spool, limit: int) -> None:
        self._connection = connection
        self._spool = spool
        self._key = attempts_key(str(spool))
        self.limit = limit
        self._worker = f"{socket.gethostname()}.{os.getpid()}"
        self._open: dict[str, Attempt] = {}  # begun and not yet forgotten or taken back
        self._linked: set[str] = set()  # of those, the ones whose only mark is the link
        with contextlib.suppress(FileNotFoundError):  # no such spool: its objects are gone
            make_dir(spool.attempts, spool.modes)  # a spool made before attempts/ existed

    def begin(self, name: str) -> Attempt:
        """Count an attempt to file `name` in its mark, before it is made.

        Raises OSError, and counts nothing, if the spool cannot take the mark (full, failing).
        """
        # The link first: it is the only mark of a first attempt, and a record exists only
        # beside it, or where links are refused.
        try:
            os.link(self._spool.ready_file(name), self._spool.attempt_link_file(name))
            self._linked.add(name)
            return self._opened(Attempt(name, 1, None))
        except FileExistsError:
            linked = True
        except FileNotFoundError:
            return Attempt(name, 1, None)  # filed already: file_object will say so
        except OSError as exc:
            if exc.errno not in _NO_LINK:
                raise
            linked = False
        record = self._read_record(name)
        mark = record or ({"attempts": 1} if linked else {})  # linked: a first, never resolved
        number, previous = 1, None
        if mark:
            begun = int(mark.get("attempts", 1))
            worker = f" (worker {mark['worker']})" if mark.get("worker") else ""
            previous = mark.get("error") or (
                f"attempt {begun}{worker} did not finish: the worker was killed, or timed out, "
                "while filing this object"
            )
            number = max(begun, self._count_failure(name, begun, cut_short=not mark.get("error")))
            number += 1
        self._write_record(
            name, {"attempts": number, "worker": self._worker, "error": None}, first=not record
        )
        return self._opened(Attempt(name, number, previous))

    def _opened(self, attempt: Attempt) -> Attempt:
        self._open[attempt.name] = attempt
        return attempt

    def _count_failure(self, name: str, begun: int, *, cut_short: bool) -> int:
        """The failures Redis knows of `name`, with the cut-short attempt `begun` added, and
        brought up to `begun` if Redis lost count."""
        failures = int(
            self._connection.hincrby(self._key, name, 1)
            if cut_short
            else self._connection.hget(self._key, name) or 0
        )
        if failures < begun:
            self._connection.hset(self._key, name, begun)
        return failures

    def exhausted(self, attempt: Attempt) -> bool:
        """True if `attempt` is one more than the limit allows: give up without trying."""
        return attempt.number > self.limit

    def failed(self, attempt: Attempt, error: BaseException) -> str:
        """Record how `attempt` failed, in its mark and in Redis; the error as recorded."""
        text = f"{type(error).__name__}: {error}"
        self._linked.discard(attempt.name)
        self._write_record(
            attempt.name, {"attempts": attempt.number, "worker": self._worker, "error": text}
        )
        self._connection.hincrby(self._key, attempt.name, 1)
        return text

    def take_back(self, attempt: Attempt) -> None:
        """Uncount `attempt`: it ended because the storage is unwell, not because of the object.
        The mark goes back to the attempt before, with how that one ended (already counted)."""
        self._open.pop(attempt.name, None)
        self._linked.discard(attempt.name)
        if attempt.number > 1:
            self._write_record(
                attempt.name,
                {
                    "attempts": attempt.number - 1,
                    "worker": self._worker,
                    "error": attempt.previous_error,
                },
            )
        else:
            self._spool.remove_attempt_marks(attempt.name)

    def take_back_all(self, names: Iterable[str]) -> None:
        """take_back the open attempts at `names` (their storage failed after all)."""
        for name in names:
            if (attempt := self._open.get(name)) is not None:
                self.take_back(attempt)

    def forget(self, names: Iterable[str], pipeline: Pipeline | None = None) -> None:
        """Remove the counts and marks of objects that left ready/ (filed or quarantined)."""
        names = list(names)
        if not names:
            return
        for name in names:
            self._open.pop(name, None)
            if name in self._linked:
                self._linked.discard(name)
                self._spool.remove_attempt_link(name)
            else:
                self._spool.remove_attempt_marks(name)
        (pipeline if pipeline is not None else self._connection).hdel(self._key, *names)

    def _read_record(self, name: str) -> dict[str, Any]:
        try:
            with open(self._spool.attempt_path(name), "rb") as f:
                mark = orjson.loads(f.read())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError):  # unreadable: count it as one attempt
            return {"attempts": 1}
        return mark if isinstance(mark, dict) else {"attempts": 1}

    def _write_record(self, name: str, record: dict[str, Any], *, first: bool = False) -> None:
        """Write the record so that a failed write (spool full) leaves the one before, if any:
        the `first` one straight into place (removed if the write fails), later ones by a
        rename."""
        path = self._spool.attempt_path(name)
        target = path if first else path.with_name(path.name + ".tmp")
        record["at"] = time.time()
        modes = self._spool.modes
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if first else os.O_TRUNC)
        try:
            fd = os.open(target, flags, modes.file_mode)
        except FileExistsError:  # another worker on the same object (a job run twice) was first
            if not first:
                raise
            self._write_record(name, record)
            return
        try:
            with open(fd, "wb") as f:
                os.fchmod(fd, modes.file_mode)
                f.write(orjson.dumps(record))
            if not first:
                os.replace(target, path)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
