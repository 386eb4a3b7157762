"""Receivers with given options, and peers that look at them: DCMTK, pynetdicom, raw PDUs, ss.

A test module starts the `pacs-ingest receive` processes it needs once (options allowing) and asks
them questions from outside, as a sender or an operator would.
"""

import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RJ, A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification
from pynetdicom.presentation import build_context

from pacs_ingest.embedded_redis import free_port
from tests.helpers import ROOT, Command, wait_until

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"


@dataclass
class Receiver:
    """One `pacs-ingest receive` process and the port it listens on."""

    port: int
    command: Command
    directory: Path  # holds its spool/ and archive/
    ae_title: str = "INGEST"

    def files(self) -> list[Path]:
        """Every file the receiver wrote to its spool or archive."""
        return [path for path in self.directory.rglob("*") if path.is_file()]

    def log(self) -> str:
        return self.command.log()


@dataclass
class Receivers:
    """The receivers of one test module, stopped at its end."""

    workdir: Path
    redis_url: str
    started: list[Receiver] = field(default_factory=list)

    def start(self, *options: str, bind: str | None = None, ae_title: str = "INGEST") -> Receiver:
        """Start a receiver on a free port; `bind` is the -b value ({port} is filled in)."""
        port = free_port()
        name = f"receiver-{len(self.started)}"
        command = Command(
            [
                "receive",
                "-b",
                (bind or f"{ae_title}:{{port}}").format(port=port),
                "--directory",
                str(self.workdir / name / "archive"),
                "--spool-dir",
                str(self.workdir / name / "spool"),
                "--redis-url",
                self.redis_url,
                *options,
            ],
            self.workdir / f"{name}.log",
        ).start()
        receiver = Receiver(port, command, self.workdir / name, ae_title)
        self.started.append(receiver)
        wait_until(
            lambda: '"receiver.started"' in receiver.log() or command.process.poll() is not None,
            30,
            f"{name} to start",
        )
        assert command.process.poll() is None, receiver.log()
        return receiver

    def stop_all(self) -> None:
        for receiver in self.started:
            try:
                receiver.command.stop()
            except Exception:
                receiver.command.kill()


def run_pacs_ingest(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`pacs-ingest` as a user runs it, for commands that end by themselves (-h, bad options)."""
    return subprocess.run(
        [sys.executable, "-m", "pacs_ingest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def dcmtk(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A DCMTK tool with -d (it prints what it negotiated and why it failed)."""
    return subprocess.run([tool, "-d", *args], capture_output=True, text=True, timeout=timeout)


def rejection(output: str) -> tuple[str, str, str] | None:
    """The (result, source, reason) DCMTK printed for an A-ASSOCIATE-RJ, if any."""
    match = re.search(r"Result: (.+?), Source: (.+?)\n.*?Reason: (.+?)\n", output, re.S)
    return match.groups() if match else None  # type: ignore[return-value]


def associate(
    port: int,
    contexts: list[tuple[str, list[str]]],
    *,
    ae_title: str = "INGEST",
    calling: str = "PYNETDICOM",
    extended: list | None = None,
) -> Association:
    """A pynetdicom association proposing `contexts` and the `extended` negotiation items."""
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    return ae.associate(
        "127.0.0.1",
        port,
        contexts=[build_context(sop, syntaxes) for sop, syntaxes in contexts],
        ae_title=ae_title,
        ext_neg=extended or None,
    )


def raw_request(
    port: int,
    *,
    called: str = "INGEST",
    calling: str = "RAW",
    application_context: str = "1.2.840.10008.3.1.1.1",
    protocol_version: int = 1,
    contexts: list[tuple[str, list[str]]] | None = None,
) -> bytes:
    """An A-ASSOCIATE-RQ (proposing Verification unless `contexts` say otherwise), with fields a
    library would not let us spoil."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = application_context
    primitive.calling_ae_title = calling
    primitive.called_ae_title = called
    proposed = [
        build_context(sop, ts) for sop, ts in contexts or [(VERIFICATION, [IMPLICIT_VR_LE])]
    ]
    for index, context in enumerate(proposed):
        context.context_id = 2 * index + 1
    primitive.presentation_context_definition_list = proposed
    item = MaximumLengthNotification()
    item.maximum_length_received = 16382
    primitive.user_information = [item]
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    pdu.protocol_version = protocol_version
    return pdu.encode()


def read_pdu(sock: socket.socket) -> bytes:
    """One whole PDU, or b"" if the peer closed first."""
    header = b""
    while len(header) < 6:
        chunk = sock.recv(6 - len(header))
        if not chunk:
            return b""
        header += chunk
    length = int.from_bytes(header[2:6], "big")
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            break
        body += chunk
    return header + body


@dataclass
class RawAnswer:
    pdu: bytes
    closed_after_s: float  # from receiving the PDU until the receiver closed the connection

    @property
    def rj(self) -> tuple[int, int, int]:
        assert self.pdu[:1] == b"\x03", f"not an A-ASSOCIATE-RJ: {self.pdu[:1]!r}"
        pdu = A_ASSOCIATE_RJ()
        pdu.decode(self.pdu)
        return (pdu.result, pdu.source, pdu.reason_diagnostic)

    @property
    def results(self) -> dict[int, int]:
        """Context ID: result of an A-ASSOCIATE-AC."""
        assert self.pdu[:1] == b"\x02", f"not an A-ASSOCIATE-AC: {self.pdu[:1]!r}"
        pdu = A_ASSOCIATE_AC()
        pdu.decode(self.pdu)
        return {item.context_id: item.result for item in pdu.presentation_context}


def send_raw(port: int, request: bytes, *, wait_for_close: bool = True) -> RawAnswer:
    """Send an A-ASSOCIATE-RQ and read the answer; time how long until the receiver closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        pdu = read_pdu(sock)
        answered = time.monotonic()
        while wait_for_close and sock.recv(65536):
            pass
        return RawAnswer(pdu, time.monotonic() - answered)


def exchange(assoc: Association, request: object, context_id: int) -> object:
    """Send a hand-made DIMSE request and return the response (as pynetdicom's send_* do: the
    association's reactor is paused so it does not take the response for itself)."""
    assoc._reactor_checkpoint.clear()
    while not assoc._is_paused:
        time.sleep(0.0001)
    try:
        assoc.dimse.send_msg(request, context_id)
        _, response = assoc.dimse.get_msg(block=True)
        return response
    finally:
        assoc._reactor_checkpoint.set()


def socket_memory(port: int) -> dict[str, int]:
    """skmem of the receiver's end of an established connection on `port` (ss -tm)."""
    output = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"skmem:\((.*?)\)", output)
    assert match, output
    memory = {}
    for item in match.group(1).split(","):
        name = item.rstrip("0123456789")
        memory[name] = int(item[len(name) :])
    return memory


def pdus_received(assoc: Association) -> list:
    """Bind a recorder of the PDUs the SCU receives from now on; returns the list it fills."""
    received: list = []
    assoc.bind(evt.EVT_PDU_RECV, lambda event: received.append(event.pdu))
    return received
