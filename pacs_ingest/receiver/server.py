"""One receiver process: one event loop serving every association it accepts on the listening
socket it inherited from its parent.

The parent binds the port once (so "port in use" is one clear error) and every receiver process
accepts on that same socket, one connection per readiness, so whichever loop is least busy wakes
first and takes the next association. No thread per association, no polling: a connection costs a
socket, a protocol object and its timers. Threads run only what blocks: fsync and the group commit
(receiver.commit).
"""

import asyncio
import contextlib
import resource
import signal
import socket
import time

from pacs_ingest.receiver import tls
from pacs_ingest.receiver.associate_pdu import Acceptor
from pacs_ingest.receiver.association import Association, AssociationRules, Registry
from pacs_ingest.receiver.commit import GroupCommit
from pacs_ingest.receiver.negotiation import AssociationPolicy
from pacs_ingest.receiver.options import ReceiverSettings
from pacs_ingest.receiver.pressure import Pressure
from pacs_ingest.receiver.service import Storage, StorePolicy
from pacs_ingest.shared import __version__, log
from pacs_ingest.shared.heartbeat import Heartbeat
from pacs_ingest.shared.jobs import DrainJob
from pacs_ingest.shared.lane import lane_id, open_lane, push
from pacs_ingest.shared.processes import CHILD_STOP_S
from pacs_ingest.shared.queue import connect, ingest_queue
from pacs_ingest.shared.spool import ReadyObject, Spool

IMPLEMENTATION_CLASS_UID = "2.25.36703735256449800250220714501275083266"
IMPLEMENTATION_VERSION_NAME = f"PACSINGEST_{__version__}"[:16]
# Associations get this long to end; the last second of the child's stop closes the group
# commit and the heartbeat.
_DRAIN_GRACE_S = CHILD_STOP_S - 1.0
_DEFAULT_HANDSHAKE_TIMEOUT_S = 60.0  # without --request-timeout, as asyncio's own default
_RETRY_UNQUEUED_EVERY_S = 2.0


def association_rules(settings: ReceiverSettings, pressure: Pressure) -> AssociationRules:
    network = settings.network
    return AssociationRules(
        policy=AssociationPolicy(
            ae_title=settings.bind.ae_title,
            accept=frozenset(settings.accept),
            capabilities=settings.capabilities,
            max_ops_invoked=network.max_ops_invoked,
            max_ops_performed=network.max_ops_performed,
        ),
        acceptor=Acceptor(
            network.max_pdulen_rcv, IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
        ),
        request_timeout_s=network.request_timeout_s,
        idle_timeout_s=network.idle_timeout_s,
        soclose_delay_s=network.soclose_delay / 1000,
        max_pdulen_snd=network.max_pdulen_snd,
        max_associations=settings.max_associations,
        refusal=pressure.refusal,
    )


def _raise_file_limit() -> None:
    """Each connection is a descriptor: allow as many as the hard limit does."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Receiver:
    """The accept loop and the associations of one process."""

    def __init__(self, settings: ReceiverSettings, listen_socket: socket.socket) -> None:
        self._settings = settings
        self._listen_socket = listen_socket
        self._tls = tls.build(settings.tls, probe=False)
        self.spool = Spool(settings.spool_dir, settings.modes)
        self.spool.create()
        self.pressure = Pressure(self.spool, settings.pressure)
        rq_queue = ingest_queue(connect(settings.redis_url), settings.queue)
        # --ignore stores nothing, so it writes no lane record either.
        lane = (
            lane_id(str(self.spool), settings.filing)
            if settings.ignore
            else open_lane(self.spool, settings.filing)
        )
        drain = DrainJob(str(self.spool), lane)

        def enqueue(objects: list[ReadyObject]) -> None:
            refs = [item.ref.partition("/")[2] for item in objects]
            push(rq_queue, drain, refs, now=time.time(), counted=objects)

        self.committer = GroupCommit(
            self.spool, lane, enqueue, wait_for_queue=settings.require_queue
        )
        policy = StorePolicy(
            settings.status,
            settings.ignore,
            settings.require_queue,
            settings.receive_delay,
            settings.response_delay,
        )
        self.registry = Registry(Storage(self.spool, self.committer, policy))
        self.rules = association_rules(settings, self.pressure)
        self.heartbeat = Heartbeat(
            connect(settings.redis_url), "receiver", spool=str(self.spool), queue=settings.queue
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- accepting -----------------------------------------------------------------------------

    def _on_acceptable(self) -> None:
        """One connection per wake-up: the other receiver processes woke too, and the least
        busy of them should take the next one."""
        try:
            client, _ = self._listen_socket.accept()
        except (BlockingIOError, InterruptedError):
            return  # another process took it
        except OSError as exc:  # out of descriptors, for instance: try again in a moment
            log.error("receiver.accept_failed", error=str(exc))
            assert self._loop is not None
            self._loop.remove_reader(self._listen_socket)
            self._loop.call_later(1.0, self._start_accepting)
            return
        self._loop.create_task(self._connect(client))  # type: ignore[union-attr]

    def _start_accepting(self) -> None:
        assert self._loop is not None
        self._loop.add_reader(self._listen_socket, self._on_acceptable)

    async def _connect(self, client: socket.socket) -> None:
        network = self._settings.network
        try:
            if not network.tcp_delay:
                # Small objects crawl under Nagle's algorithm; the reference disables it too.
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if network.sosnd_buffer:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, network.sosnd_buffer)
            peer = client.getpeername()[0]
        except OSError:  # the peer is gone already
            client.close()
            return
        handshake_timeout = network.request_timeout_s or _DEFAULT_HANDSHAKE_TIMEOUT_S
        try:
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                lambda: Association(self.rules, self.registry),
                client,
                ssl=self._tls,
                ssl_handshake_timeout=handshake_timeout if self._tls else None,
            )
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            log.warning("tls.handshake_failed", peer=peer, error=str(exc) or type(exc).__name__)
            client.close()
            return
        if network.tcp_delay:
            # --tcp-delay asks for Nagle's algorithm, whatever the transport set.
            with contextlib.suppress(OSError):
                transport.get_extra_info("socket").setsockopt(
                    socket.IPPROTO_TCP, socket.TCP_NODELAY, 0
                )

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until SIGTERM or SIGINT, then release, drain and return."""
        self._loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(signum, stop.set)
        self._listen_socket.setblocking(False)
        retry = self._loop.create_task(self._retry_unqueued())
        self.heartbeat.start()
        self._start_accepting()
        log.event("receiver.started", port=self._settings.bind.port, spool=str(self.spool))
        await stop.wait()
        self._loop.remove_reader(self._listen_socket)
        self._listen_socket.close()  # our descriptor only: the other processes keep theirs
        unfinished = await self._drain()
        retry.cancel()
        await asyncio.sleep(0)  # the stores of the last turn go to the fsync threads
        await asyncio.to_thread(self.committer.close)
        await asyncio.to_thread(self.heartbeat.stop)
        log.event("receiver.stopped", unfinished_associations=unfinished)

    async def _retry_unqueued(self) -> None:
        while True:
            await asyncio.sleep(_RETRY_UNQUEUED_EVERY_S)
            self.committer.retry_unqueued()

    async def _drain(self) -> int:
        """Release every association once its operations are answered; abort what is left
        halfway through the grace period; the number still open at its end."""
        deadline = time.monotonic() + _DRAIN_GRACE_S
        for assoc in list(self.registry.live):
            assoc.request_release()
        aborted = False
        while self.registry.live and time.monotonic() < deadline:
            if not aborted and time.monotonic() > deadline - _DRAIN_GRACE_S / 2:
                aborted = True
                for assoc in list(self.registry.live):
                    assoc.abort("receiver shutting down")
            await asyncio.sleep(0.05)
        return len(self.registry.live)


def serve(settings: ReceiverSettings, listen_socket: socket.socket) -> None:
    """Run one receiver process until SIGTERM or SIGINT."""
    _raise_file_limit()
    receiver = Receiver(settings, listen_socket)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(receiver.run())
