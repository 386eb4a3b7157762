"""Back-pressure: refuse new associations while the spool is nearly full or the backlog too long.

Senders treat a transient rejection as "try again later", which is what we want when accepting
more would only end in 0xA700 for every object, or in a spool that fills faster than workers
drain it. A thread samples the spool every second; the association check reads the sample.
"""

import os
import threading
from dataclasses import dataclass

from shared import log
from shared.spool import Spool

_SAMPLE_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class PressureLimits:
    min_free_bytes: int  # --min-free-space; 0: no limit
    max_backlog: int  # --max-backlog, objects waiting in ready/; 0: no limit


class Pressure:
    def __init__(self, spool: Spool, limits: PressureLimits) -> None:
        self._spool = spool
        self._limits = limits
        self._reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pressure", daemon=True)

    def start(self) -> None:
        self._sample()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def refusal(self) -> str | None:
        """Why a new association should be refused now, or None."""
        return self._reason

    def _sample(self) -> None:
        reason = None
        if self._limits.min_free_bytes:
            stat = os.statvfs(self._spool.root)
            free = stat.f_bavail * stat.f_frsize
            if free < self._limits.min_free_bytes:
                reason = f"spool has {free} bytes free, below {self._limits.min_free_bytes}"
        if reason is None and self._limits.max_backlog:
            backlog = self._spool.ready_count()
            if backlog > self._limits.max_backlog:
                reason = f"{backlog} objects wait in the spool, over {self._limits.max_backlog}"
        if reason != self._reason:
            if reason:
                log.warning("receiver.refusing", reason=reason)
            else:
                log.event("receiver.accepting")
        self._reason = reason

    def _run(self) -> None:
        while not self._stop.wait(_SAMPLE_EVERY_S):
            try:
                self._sample()
            except OSError as exc:
                log.error("pressure.sample_failed", error=str(exc))
