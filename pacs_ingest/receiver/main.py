"""`pacs-ingest receive`: bind the port, fan out into receiver processes, request sweeps."""

import socket
import sys
from pathlib import Path

from pacs_ingest.receiver import affinity, tls
from pacs_ingest.receiver.options import Bind, ReceiverSettings
from pacs_ingest.receiver.server import serve
from pacs_ingest.receiver.sweeps import SweepScheduler
from pacs_ingest.shared import log
from pacs_ingest.shared.exit_codes import ExitCode
from pacs_ingest.shared.jobs import SweepJob
from pacs_ingest.shared.modes import make_dirs
from pacs_ingest.shared.options import ConfigError
from pacs_ingest.shared.processes import (
    ProcessGroup,
    StopSignal,
    group_index,
    stop_all,
    supervise,
)
from pacs_ingest.shared.queue import connect, ingest_queue
from pacs_ingest.shared.spool import Spool


class BindError(ConfigError):
    """Raised when the listening port cannot be opened (in use, no permission, bad address)."""


def listen(bind: Bind, receive_buffer: int = 0) -> socket.socket:
    """The listening socket every receiver process inherits. SO_RCVBUF (--sorcv-buffer) is set
    before listen(2), so accepted sockets inherit it and the TCP window scale matches it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((bind.host, bind.port))
        # The kernel's limit, not 50: when a burst of connects (a flood of half-open ones, or
        # many modalities at once) fills a short accept queue while the receivers are busy,
        # every further sender waits out SYN retransmits of 1, 3, 7 s.
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise BindError(
            f"Unable to start TCPListener on {bind.host or '*'}:{bind.port}: {exc.strerror or exc}"
        ) from exc
    sock.set_inheritable(True)
    return sock


def _receiver_process(settings: ReceiverSettings, listen_socket: socket.socket) -> None:
    log.configure(settings.log_level, role="receiver")
    if settings.receiver_affinity == affinity.SPREAD:
        affinity.pin_receiver(group_index(), settings.receivers)
    try:
        serve(settings, listen_socket)
    except (OSError, ConfigError) as exc:
        log.error("receiver.failed", error=str(exc))
        sys.exit(ExitCode.CONFIG)


def start_receivers(settings: ReceiverSettings) -> tuple[ProcessGroup, SweepScheduler]:
    """Check TLS, bind, create the spool, start the receiver processes and the sweep requests."""
    tls.build(settings.tls, probe=True)  # a TLS problem stops start-up before the port opens
    listen_socket = listen(settings.bind, settings.network.sorcv_buffer)
    Spool(settings.spool_dir, settings.modes).create()
    if not settings.ignore:
        make_dirs(Path(settings.filing.directory), settings.modes)
    group = ProcessGroup(
        "receiver", _receiver_process, (settings, listen_socket), settings.receivers
    )
    group.start()
    sweeps = SweepScheduler(
        ingest_queue(connect(settings.redis_url), settings.queue),
        SweepJob(settings.spool_dir),
        settings.sweep_interval,
    )
    sweeps.start()
    return group, sweeps


def receive(settings: ReceiverSettings) -> int:
    stop = StopSignal().install()
    group, sweeps = start_receivers(settings)
    try:
        return supervise([group], stop)
    finally:
        sweeps.stop()
        stop_all([group])
