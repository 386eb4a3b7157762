"""One receiver process: a pynetdicom AE serving a listening socket it inherited from its parent.

The parent binds the port once (so "port in use" is one clear error) and every receiver process
accepts on that same socket; whichever process is least busy picks up the next association.
Each accepted connection gets its socket options, its TLS handshake (on its own thread, so a slow
or hostile peer holds up nobody) and a `ReceiverAssociation` following the reference's rules.
"""

import socket
import socketserver
import ssl
import threading
import time
from datetime import datetime
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

from receiver import tls
from receiver.association import AssociationRules, LingeringSocket, ReceiverAssociation
from receiver.commit import Committer
from receiver.negotiation import AssociationPolicy
from receiver.network_options import NetworkSettings
from receiver.options import ReceiverSettings
from receiver.pressure import Pressure
from receiver.spool_file import SpoolFiles
from receiver.store import StoreHandler, StorePolicy
from shared import log
from shared.processes import StopSignal
from shared.queue import connect, ingest_queue
from shared.spool import Spool

_SHUTDOWN_GRACE_S = 12.0
_ACCEPT_YIELD_S = 0.01


def configure_pynetdicom() -> None:
    """pynetdicom's process-wide switches, set once when a receiver process starts.

    Chunked receive streams each data set to a file instead of decoding it; the standard log
    handlers format every PDU even when nobody reads them. (Which SOP classes are accepted is
    `receiver.negotiation`'s business, not pynetdicom's.)
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.LOG_HANDLER_LEVEL = "none"


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
        receive_delays=settings.receive_delay,
        response_delays=settings.response_delay,
        soclose_delay_ms=network.soclose_delay,
        max_pdulen_snd=network.max_pdulen_snd,
        refusal=pressure.refusal,
    )


class ReceiverRequestHandler(RequestHandler):
    """One accepted connection: TLS handshake if configured, then a `ReceiverAssociation`."""

    server: "ReceiverServer"

    def handle(self) -> None:
        if self.server.tls_context is not None:
            try:
                self.request = tls.handshake(
                    self.server.tls_context, self.request, self.server.network.request_timeout_s
                )
            except (ssl.SSLError, OSError) as exc:
                log.warning("tls.handshake_failed", peer=self.client_address[0], error=str(exc))
                self.request.close()
                return
        super().handle()

    def _create_association(self) -> Association:
        """As pynetdicom's, with our association and socket classes."""
        assoc = ReceiverAssociation(self.ae, self.server.rules)
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        linger_s = self.server.rules.soclose_delay_ms / 1000
        assoc.set_socket(LingeringSocket(assoc, self.request, linger_s))
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.requestor.address_info = self.remote
        for event, handlers in self.server._handlers.items():
            if event.is_intervention and handlers:
                assoc.bind(event, *handlers)
            elif isinstance(event, evt.NotificationEvent):
                for handler, args in handlers:  # type: ignore[misc]
                    assoc.bind(event, handler, args)
        return assoc


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server on an already listening socket, with the reference's
    per-connection socket options and TLS."""

    daemon_threads = True

    def __init__(
        self,
        *args: Any,
        listen_socket: socket.socket,
        rules: AssociationRules,
        network: NetworkSettings,
        tls_context: ssl.SSLContext | None,
        **kwargs: Any,
    ) -> None:
        self._listen_socket = listen_socket
        self._connections = 0
        self._count_lock = threading.Lock()
        self.rules = rules
        self.network = network
        self.tls_context = tls_context
        super().__init__(*args, request_handler=ReceiverRequestHandler, **kwargs)

    def server_bind(self) -> None:
        self.socket.close()
        self.socket = self._listen_socket
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        # Already listening. Non-blocking, because every receiver process selects on this socket
        # and all but one lose each race to accept.
        self.socket.setblocking(False)

    def shutdown(self) -> None:
        # pynetdicom's shutdown also unregisters from AE.start_server's list, where we are not.
        socketserver.BaseServer.shutdown(self)
        self.server_close()

    def server_close(self) -> None:
        # Only our descriptor: shutdown(2) would stop the shared socket in every receiver.
        self.socket.close()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self._connections -= 1

    def get_request(self) -> tuple[socket.socket, Any]:
        # Every receiver process wakes for each new connection and the first to accept wins.
        # A busy process waits a little per association it serves, so an idle one wins, and
        # associations spread over the processes instead of piling onto one.
        if self._connections:
            time.sleep(min(self._connections * _ACCEPT_YIELD_S, 5 * _ACCEPT_YIELD_S))
        client, address = self.socket.accept()
        with self._count_lock:
            self._connections += 1  # until its thread ends (process_request_thread)
        client.setblocking(True)
        if not self.network.tcp_delay:
            # Small objects crawl under Nagle's algorithm; the reference disables it too.
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.network.sosnd_buffer:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.network.sosnd_buffer)
        return client, address


def build_ae(settings: ReceiverSettings) -> AE:
    """The AE of one receiver process. Association policy lives in `association_rules`."""
    ae = AE(ae_title=settings.bind.ae_title or "PACS-INGEST")
    # pynetdicom refuses to serve without a supported context; our negotiation never reads it.
    ae.add_supported_context(Verification)
    ae.maximum_associations = 1_000_000  # the reference sets no limit
    ae.maximum_pdu_size = settings.network.max_pdulen_rcv
    ae.acse_timeout = settings.network.request_timeout_s
    ae.network_timeout = settings.network.idle_timeout_s
    ae.dimse_timeout = None
    return ae


def _established(server: ThreadedAssociationServer) -> list[Association]:
    """Associations that may still send a store; one still negotiating (or a bare TCP
    connection waiting out the ACSE timeout) has nothing in flight."""
    return [assoc for assoc in server.active_associations if assoc.is_established]


def serve(settings: ReceiverSettings, listen_socket: socket.socket) -> None:
    """Run one receiver process until SIGTERM or SIGINT, then drain and return."""
    configure_pynetdicom()
    stop = StopSignal().install()

    spool = Spool(settings.spool_dir)
    spool.create()
    files = SpoolFiles(spool)
    files.install()
    pressure = Pressure(spool, settings.pressure)
    pressure.start()
    committer = Committer(
        spool, ingest_queue(connect(settings.redis_url), settings.queue), settings.filing
    )
    store = StoreHandler(
        spool,
        files,
        committer,
        StorePolicy(settings.status, settings.ignore, settings.require_queue),
    )

    def discard_unfinished(event: Event) -> None:
        if count := files.discard_unfinished(event.assoc):
            log.warning("store.incomplete", objects=count, peer=event.assoc.requestor.address)

    busy: set[Association] = set()

    def handle_store(event: Event) -> Any:
        busy.add(event.assoc)
        try:
            return store(event)
        finally:
            event.assoc.pacing.before_store_response()  # --response-delay, success or not
            busy.discard(event.assoc)

    ae = build_ae(settings)
    server = ae.make_server(
        (settings.bind.host, settings.bind.port),
        evt_handlers=[
            (evt.EVT_C_STORE, handle_store),
            (evt.EVT_CONN_CLOSE, discard_unfinished),
        ],
        server_class=ReceiverServer,
        listen_socket=listen_socket,
        rules=association_rules(settings, pressure),
        network=settings.network,
        tls_context=tls.build(settings.tls, probe=False),
    )
    acceptor = threading.Thread(target=server.serve_forever, name="acceptor", daemon=True)
    acceptor.start()
    log.event("receiver.started", port=settings.bind.port, spool=str(spool))
    stop.wait()

    # Stop accepting; let associations end, aborting each one between two stores if it lingers.
    server.shutdown()
    deadline = time.monotonic() + _SHUTDOWN_GRACE_S
    while (established := _established(server)) and time.monotonic() < deadline:
        if time.monotonic() > deadline - _SHUTDOWN_GRACE_S / 2:
            for assoc in established:
                if assoc not in busy:
                    assoc.abort()
        time.sleep(0.05)
    committer.close()
    pressure.stop()
    log.event("receiver.stopped", unfinished_associations=len(_established(server)))
