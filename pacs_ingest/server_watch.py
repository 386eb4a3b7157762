"""`up` watches its embedded server: restarts it when it dies, gives up when it keeps dying.

A restart reuses the socket, the password and the data, so receivers and workers reconnect by
themselves. A server that dies again and again (a full disk under its AOF, a corrupt AOF, a
binary that will not run) is not something restarts fix: `up` stops with a message instead.
"""

import os
from collections import deque

from pacs_ingest.embedded_redis import EmbeddedRedisError, RedisServer
from pacs_ingest.redis_home import RedisHome
from pacs_ingest.shared import log

DEATHS_ALLOWED = 3
WITHIN_S = 60.0


class ServerFailed(RuntimeError):
    """Raised when the embedded server died DEATHS_ALLOWED times within WITHIN_S seconds."""


class ServerWatch:
    """Supervised beside the process groups of `up` (shared.processes.supervise)."""

    def __init__(self, server: RedisServer, home: RedisHome) -> None:
        self._server = server
        self._home = home
        self._deaths: deque[float] = deque()

    @property
    def url(self) -> str:
        """The server's URL; it holds the password, so never log it."""
        return self._server.url

    def start(self) -> None:
        self._server.start()
        self._home.record(os.getpid(), self._server.pid)
        self._home.publish(self._server.url)
        log.event(
            "redis.embedded", socket=str(self._home.socket), url_file=str(self._home.url_file)
        )

    def reap(self, now: float) -> None:
        """Restart the server if it died; ServerFailed once it died too often. `now` is a
        time.monotonic() reading."""
        process = self._server.process
        if process is None or process.poll() is None:
            return
        log.warning("redis.embedded_exited", pid=process.pid, exitcode=process.returncode)
        while True:
            self._deaths.append(now)
            while now - self._deaths[0] > WITHIN_S:
                self._deaths.popleft()
            if len(self._deaths) >= DEATHS_ALLOWED:
                raise ServerFailed(
                    f"the embedded Redis server died {len(self._deaths)} times within "
                    f"{WITHIN_S:.0f} s; see {self._server.log_path}"
                )
            try:
                self.start()
            except EmbeddedRedisError as exc:
                log.warning("redis.embedded_restart_failed", error=str(exc))
                continue
            log.event("redis.embedded_restarted", pid=self._server.pid)
            return

    def stop(self) -> None:
        self._server.stop()
