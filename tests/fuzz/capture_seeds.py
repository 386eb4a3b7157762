"""Record what real SCUs send, as seed corpora for the fuzzers.

    python -m tests.fuzz.capture_seeds

A recording proxy sits between each SCU (DCMTK echoscu and storescu, pynetdicom) and DCMTK's
storescp, and keeps every byte the SCU sent. Each connection's bytes become one stream seed
(`seeds/stream/`); its A-ASSOCIATE-RQ an `seeds/rq/` seed and its command sets `seeds/command/`
seeds. Run it again only to refresh the committed seeds.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from pynetdicom import AE, StoragePresentationContexts, _config
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassCommonExtendedNegotiation,
    UserIdentityNegotiation,
)

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import free_port
from tests.helpers import wait_for_port

SEEDS = Path(__file__).resolve().parent / "seeds"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


class RecordingProxy:
    """Forwards connections on its port to `target_port`; keeps what each client sent."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target_port = target_port
        self.streams: list[bytearray] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self._listener.accept()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            recorded = bytearray()
            self.streams.append(recorded)
            threading.Thread(target=self._pump, args=(client, upstream, recorded)).start()
            threading.Thread(target=self._pump, args=(upstream, client, None)).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, recorded: bytearray | None) -> None:
        try:
            while data := source.recv(65536):
                if recorded is not None:
                    recorded += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def take(self) -> bytes:
        """The stream of the one connection made since the last call."""
        deadline = time.monotonic() + 10
        while not self.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the last bytes (A-RELEASE-RQ, A-ABORT) may still be in flight
        stream = bytes(self.streams.pop(0))
        assert not self.streams, "one connection at a time"
        return stream


def pdus(stream: bytes) -> list[bytes]:
    found, offset = [], 0
    while offset + 6 <= len(stream):
        length = int.from_bytes(stream[offset + 2 : offset + 6], "big")
        found.append(stream[offset : offset + 6 + length])
        offset += 6 + length
    return found


def command_sets(stream: bytes) -> list[bytes]:
    """The command sets the P-DATA-TF PDUs of `stream` carry, reassembled."""
    found, current = [], bytearray()
    for pdu in pdus(stream):
        if pdu[0] != 0x04:
            continue
        offset = 6
        while offset < len(pdu):
            length = int.from_bytes(pdu[offset : offset + 4], "big")
            control = pdu[offset + 5]
            if control & 0x01:
                current += pdu[offset + 6 : offset + 4 + length]
                if control & 0x02:
                    found.append(bytes(current))
                    current.clear()
            offset += 4 + length
    return found


def save(name: str, stream: bytes) -> None:
    (SEEDS / "stream" / f"{name}.bin").write_bytes(stream)
    (SEEDS / "rq" / f"{name}.bin").write_bytes(pdus(stream)[0])
    for index, command in enumerate(command_sets(stream)):
        (SEEDS / "command" / f"{name}-{index}.bin").write_bytes(command)


def pynetdicom_sessions(port: int, files: list[Path], proxy: RecordingProxy) -> None:
    _config.STORE_SEND_CHUNKED_DATASET = True
    ae = AE(ae_title="PYNETDICOM")
    ae.add_requested_context(CT_IMAGE_STORAGE, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_requested_context("1.2.840.10008.1.1")
    for context in StoragePresentationContexts[:126]:
        if context.abstract_syntax != CT_IMAGE_STORAGE:
            ae.add_requested_context(context.abstract_syntax)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assoc.send_c_echo()
    for path in files:
        assoc.send_c_store(path)
    assoc.release()
    save("pynetdicom-store-release", proxy.take())

    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid, role.scu_role, role.scp_role = CT_IMAGE_STORAGE, True, False
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 4
    window.maximum_number_operations_performed = 4
    identity = UserIdentityNegotiation()
    identity.user_identity_type, identity.positive_response_requested = 2, True
    identity.primary_field, identity.secondary_field = b"operator", b"secret"
    extended = SOPClassCommonExtendedNegotiation()
    extended.sop_class_uid = CT_IMAGE_STORAGE
    extended.service_class_uid = "1.2.840.10008.4.2"
    extended.related_general_sop_class_identification = ["1.2.840.10008.5.1.4.1.1.2.1"]
    ae = AE(ae_title="EXTENDED")
    ae.add_requested_context(CT_IMAGE_STORAGE, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate(
        "127.0.0.1", port, ae_title="STORESCP", ext_neg=[role, window, identity, extended]
    )
    assoc.send_c_store(files[0])
    assoc.abort()
    save("pynetdicom-extended-abort", proxy.take())

    ae = AE(ae_title="ECHO")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assoc.send_c_echo()
    assoc.release()
    save("pynetdicom-echo-release", proxy.take())


def main() -> None:
    for kind in ("stream", "rq", "command"):
        shutil.rmtree(SEEDS / kind, ignore_errors=True)
        (SEEDS / kind).mkdir(parents=True)
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        files = make_corpus(work / "corpus", 2, size=2048)
        big = make_corpus(work / "big", 1, size=20000)
        storescp_port = free_port()
        (work / "out").mkdir()
        storescp = subprocess.Popen(
            ["storescp", "-aet", "STORESCP", "+xa", "-od", str(work / "out"), str(storescp_port)]
        )
        try:
            wait_for_port(storescp_port)
            proxy = RecordingProxy(storescp_port)
            env = {**os.environ, "TCP_NODELAY": "1"}
            port = str(proxy.port)
            subprocess.run(["echoscu", "-aec", "STORESCP", "127.0.0.1", port], check=True)
            save("echoscu", proxy.take())
            subprocess.run(
                ["storescu", "-aec", "STORESCP", "127.0.0.1", port, *map(str, files)],
                check=True,
                env=env,
            )
            save("storescu-128-contexts", proxy.take())
            subprocess.run(
                ["storescu", "-aec", "STORESCP", "-pdu", "4096", "127.0.0.1", port, str(big[0])],
                check=True,
                env=env,
            )
            save("storescu-fragmented", proxy.take())
            pynetdicom_sessions(proxy.port, files, proxy)
        finally:
            storescp.terminate()
            storescp.wait()
    for kind in ("stream", "rq", "command"):
        sizes = [path.stat().st_size for path in (SEEDS / kind).iterdir()]
        print(f"{kind}: {len(sizes)} seeds, {sum(sizes)} bytes")


if __name__ == "__main__":
    main()
