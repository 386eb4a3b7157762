"""<spool>/redis: the home of `pacs-ingest up`'s embedded server, and how others find it.

Besides the server's data it holds, all readable by their owner only:

- `lock`: flock'ed by `up` for as long as it (or the server, which inherits the descriptor)
  lives, so two `up`s never run one server's data;
- `pids.json`: who holds the lock (pid and kernel start time of `up` and of the server), so a
  second `up` can tell a live owner (refuse) from a server its killed `up` left behind (stop it);
- `password`: the server's requirepass, made once and kept, so URLs others saved stay valid;
- `url`: the URL to connect with (Unix socket `sock`, password included), which `work`,
  `reprocess`, rq's tools and rq-dashboard read when given only the spool.

A Unix socket path holds at most 107 bytes; a spool deeper than that keeps its socket in a
private folder of the temporary directory instead, named after the spool (see socket_path).
"""

import contextlib
import fcntl
import hashlib
import os
import secrets
import signal
import stat
import tempfile
import time
from pathlib import Path

import orjson

from pacs_ingest.embedded_redis import (
    MAX_SOCKET_PATH,
    EmbeddedRedisError,
    RedisServer,
    valkey_binary,
    write_private,
)
from pacs_ingest.shared import log

_ORPHAN_STOP_TIMEOUT_S = 10.0


class SpoolInUse(EmbeddedRedisError):
    """Raised when another live `up` holds the spool's embedded server."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a process from a later one given the same pid),
    or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def _alive(identity: list | None) -> bool:
    """Whether the process recorded as [pid, start time] still runs."""
    if not identity:
        return False
    started = _start_time(identity[0])
    return started is not None and started == identity[1]


def socket_path(home: Path) -> Path:
    """`home`/sock, or where that is too long for a Unix socket, a socket named after `home` in
    pacs-ingest-<uid>/ of the temporary directory (the same path at every start)."""
    inside = home / "sock"
    if len(os.fsencode(inside)) <= MAX_SOCKET_PATH:
        return inside
    digest = hashlib.sha256(os.fsencode(home)).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"pacs-ingest-{os.getuid()}" / f"{digest}.sock"


def _private_folder(folder: Path) -> None:
    """Make `folder` (0700), or check that the one there is ours and closed to others."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    info = folder.lstat()
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.getuid()
        or stat.S_IMODE(info.st_mode) & 0o077
    ):
        raise EmbeddedRedisError(
            f"{folder} (for the embedded server's socket) is not a folder of ours closed to "
            "others; remove it or use a shorter --spool-dir"
        )


class RedisHome:
    def __init__(self, spool_dir: str | Path) -> None:
        self.path = Path(spool_dir).absolute() / "redis"
        self.socket = socket_path(self.path)
        self.url_file = self.path / "url"
        self._lock = self.path / "lock"
        self._pids = self.path / "pids.json"
        self._password = self.path / "password"

    def server(self, lock: int) -> RedisServer:
        """The home's server (not yet started): its data here, on the home's socket, with the
        home's password, holding `lock` (from claim) for as long as it lives."""
        return RedisServer(
            valkey_binary(),
            self.path,
            persistent=True,
            unix_socket=self.socket,
            password=self.password(),
            keep_fds=(lock,),
        )

    def claim(self) -> int:
        """Lock the home for this process; the locked descriptor (pass it to the server).

        A server left by a killed `up` is stopped first; SpoolInUse if a live `up` owns it.
        """
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.socket.parent != self.path:
            _private_folder(self.socket.parent)
        fd = os.open(self._lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if not self._try_lock(fd):
                self._stop_orphan()
                if not self._wait_for_lock(fd):
                    raise SpoolInUse(
                        f"{self._lock} is held by a process that is not a pacs-ingest up nor "
                        f"its server (see `fuser {self._lock}`)"
                    )
        except BaseException:
            os.close(fd)
            raise
        self.record(os.getpid(), None)  # ours from now on, before any server runs
        return fd

    @staticmethod
    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _wait_for_lock(self, fd: int) -> bool:
        deadline = time.monotonic() + _ORPHAN_STOP_TIMEOUT_S
        while not self._try_lock(fd):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)  # flock(2) has no timeout; the holder is on its way out
        return True

    def _read_pids(self) -> dict:
        try:
            return orjson.loads(self._pids.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}

    def _stop_orphan(self) -> None:
        pids = self._read_pids()
        if _alive(pids.get("up")):
            raise SpoolInUse(
                f"{self.path.parent} is in use by pacs-ingest up (pid {pids['up'][0]}): stop "
                "it first, or give this one another --spool-dir"
            )
        server = pids.get("server")
        if not _alive(server):
            return
        log.warning("redis.orphan_stopped", pid=server[0], data=str(self.path))
        os.kill(server[0], signal.SIGTERM)
        deadline = time.monotonic() + _ORPHAN_STOP_TIMEOUT_S
        while _alive(server):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(server[0], signal.SIGKILL)
                break
            time.sleep(0.05)  # not our child: nothing to wait on but /proc

    def record(self, up_pid: int, server_pid: int | None) -> None:
        """Note who holds the lock now (on claiming it, and after each server start)."""
        pids = {"up": [up_pid, _start_time(up_pid)]}
        if server_pid is not None:
            pids["server"] = [server_pid, _start_time(server_pid)]
        write_private(self._pids, orjson.dumps(pids).decode())

    def password(self) -> str:
        """The server's password: the kept one, or a new random one (never none at all)."""
        try:
            kept = self._password.read_text().strip()
        except FileNotFoundError:
            kept = ""
        if kept:
            return kept
        password = secrets.token_urlsafe(32)
        write_private(self._password, password + "\n")
        return password

    def publish(self, url: str) -> None:
        write_private(self.url_file, url + "\n")


def find_redis_url(redis_url: str | None, spool_dir: str | None) -> str:
    """`redis_url` (from --redis-url or REDIS_URL) if given, else the URL of the embedded server
    of `up` on `spool_dir`; EmbeddedRedisError naming what to give when there is neither."""
    if redis_url:
        return redis_url
    if not spool_dir:
        raise EmbeddedRedisError("give --redis-url (or REDIS_URL), or the --spool-dir of an `up`")
    url_file = RedisHome(spool_dir).url_file
    try:
        return url_file.read_text().strip()
    except FileNotFoundError:
        raise EmbeddedRedisError(
            f"no --redis-url (or REDIS_URL), and {spool_dir} has no embedded server of "
            f"`pacs-ingest up` ({url_file} is missing)"
        ) from None
    except OSError as exc:
        raise EmbeddedRedisError(f"cannot read {url_file}: {exc.strerror or exc}") from None
