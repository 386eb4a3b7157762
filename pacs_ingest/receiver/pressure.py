"""Back-pressure: refuse new associations while the spool is nearly full or the backlog too long.

Senders treat a transient rejection as "try again later", which is what we want when accepting
more would only end in 0xA700 for every object, or in a spool that fills faster than workers
drain it. Both are asked at each association (a statvfs, and the backlog count), so every
receiver process sees the same answer at once.
"""

import os
from dataclasses import dataclass

from pacs_ingest.shared import log
from pacs_ingest.shared.spool import Spool


@dataclass(frozen=True, slots=True)
class PressureLimits:
    min_free_space: int  # --min-free-space; 0: no limit
    max_backlog: int  # --max-backlog, objects waiting in ready/; 0: no limit


class Pressure:
    def __init__(self, spool: Spool, limits: PressureLimits) -> None:
        self._spool = spool
        self._limits = limits
        self._reason: str | None = None  # the last answer, to log its changes only

    def refusal(self) -> str | None:
        """Why a new association should be refused now, or None."""
        reason = self._short_of_space() or self._backlog_too_long()
        if reason != self._reason:
            if reason:
                log.warning("receiver.refusing", reason=reason)
            else:
                log.event("receiver.accepting")
            self._reason = reason
        return reason

    def _short_of_space(self) -> str | None:
        if not self._limits.min_free_space:
            return None
        try:
            stat = os.statvfs(self._spool.root)
        except OSError as exc:
            return f"spool file system unreadable: {exc.strerror}"
        free = stat.f_bavail * stat.f_frsize
        if free < self._limits.min_free_space:
            return f"spool has {free} bytes free, below {self._limits.min_free_space}"
        return None

    def _backlog_too_long(self) -> str | None:
        if not self._limits.max_backlog:
            return None
        limit = self._limits.max_backlog
        if self._spool.ready_count(stop_after=limit) > limit:
            return f"more than {limit} objects wait in the spool"
        return None
