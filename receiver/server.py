"""One receiver process: a pynetdicom AE serving a listening socket it inherited from its parent.

The parent binds the port once (so "port in use" is one clear error) and every receiver process
accepts on that same socket; whichever process is least busy picks up the next association.
"""

import socket
import socketserver
import threading
import time
from typing import Any

from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification
from pynetdicom.transport import ThreadedAssociationServer

from receiver.commit import Committer
from receiver.options import ReceiverSettings
from receiver.spool_file import SpoolFiles
from receiver.store import StoreHandler, StorePolicy
from shared import log
from shared.processes import StopSignal
from shared.queue import connect, ingest_queue
from shared.spool import Spool

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
_SHUTDOWN_GRACE_S = 12.0
_ACCEPT_YIELD_S = 0.01


def configure_pynetdicom() -> None:
    """pynetdicom's process-wide switches, set once when a receiver process starts.

    Chunked receive streams each data set to a file instead of decoding it; unrestricted storage
    accepts every storage SOP class with the first transfer syntax the peer proposes (the
    reference's default); the standard log handlers format every PDU even when nobody reads them.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.LOG_HANDLER_LEVEL = "none"


class ReceiverServer(ThreadedAssociationServer):
    """pynetdicom's threaded server on an already listening socket, with TCP_NODELAY."""

    daemon_threads = True

    def __init__(self, *args: Any, listen_socket: socket.socket, **kwargs: Any) -> None:
        self._listen_socket = listen_socket
        self._connections = 0
        self._count_lock = threading.Lock()
        super().__init__(*args, **kwargs)

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
        client, address = super().get_request()
        with self._count_lock:
            self._connections += 1  # until its thread ends (process_request_thread)
        client.setblocking(True)
        # Small objects crawl under Nagle's algorithm; the reference disables it too.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return client, address


def build_ae(settings: ReceiverSettings) -> AE:
    ae = AE(ae_title=settings.bind.ae_title or "PACS-INGEST")
    ae.require_called_aet = settings.bind.ae_title is not None
    ae.require_calling_aet = list(settings.accept)
    ae.add_supported_context(Verification, IMPLICIT_VR_LITTLE_ENDIAN)
    ae.maximum_associations = 1_000_000  # the reference sets no limit
    ae.maximum_pdu_size = 16378
    ae.network_timeout = None
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
    log.event("receiver.stopped", unfinished_associations=len(_established(server)))
