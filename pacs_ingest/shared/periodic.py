"""A daemon thread that runs one call every so many seconds until stopped.

Heartbeats (shared.heartbeat), worker leases (workers.lease) and sweep requests
(receiver.sweeps) each repeat one Redis write beside the work of their process.
"""

import threading
from collections.abc import Callable


class Periodic:
    """Calls `tick` at once on start (unless `wait_first`), then every `every_s` seconds.

    `tick` handles its own errors: an exception ends the thread.
    """

    def __init__(
        self, name: str, every_s: float, tick: Callable[[], None], *, wait_first: bool = False
    ) -> None:
        self._every_s = every_s
        self._tick = tick
        self._wait_first = wait_first
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop ticking; True once the thread has ended, False if a tick still runs after
        `timeout_s` (None: wait for it)."""
        self._stop.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        if self._wait_first and self._stop.wait(self._every_s):
            return
        while True:
            self._tick()
            if self._stop.wait(self._every_s):
                return
