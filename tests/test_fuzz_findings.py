"""What the fuzzers found, each pinned by a test against a live receiver (raw PDUs on a real
socket): inputs that once broke an association without an answer, or held it forever."""

import socket
import struct
import subprocess
import time

import pytest

from tests.fuzz import streams
from tests.helpers import wait_until
from tests.receivers import Receiver, Receivers, dcmtk, read_pdu

SUCCESS = 0x0000


@pytest.fixture(scope="module")
def default(receivers: Receivers) -> Receiver:
    return receivers.start("--idle-timeout", "2000")


@pytest.fixture(scope="module")
def any_class(receivers: Receivers) -> Receiver:
    return receivers.start("--accept-unknown")


def connect(receiver: Receiver) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=10)


def status_of(pdu: bytes) -> int:
    """The Status of the response command set one P-DATA-TF carries."""
    assert pdu[:1] == b"\x04", f"not a P-DATA-TF: {pdu[:16]!r}"
    at = pdu.find(struct.pack("<HHI", 0, 0x0900, 2))
    assert at >= 0, pdu
    return int.from_bytes(pdu[at + 8 : at + 10], "little")


class TestBytesThatAreNotAscii:
    """UIDs, AE titles and names arrive as bytes; a byte above 0x7F once made the receiver
    raise while answering (UnicodeEncodeError) and drop the connection with no PDU."""

    def test_a_proposed_transfer_syntax_that_is_not_ascii_still_gets_an_ac(
        self, any_class: Receiver
    ) -> None:
        contexts = streams.presentation_context(1, b"1.2.3.4", b"1.2.840.10008.1.2.1\xff")
        with connect(any_class) as sock:
            sock.sendall(streams.associate_rq(contexts=contexts))
            answer = read_pdu(sock)
        assert answer[:1] == b"\x02", f"no A-ASSOCIATE-AC: {answer[:16]!r}"

    def test_a_c_store_with_such_uids_is_stored_and_answered(self, default: Receiver) -> None:
        uid = b"1.2.3.\xe94"
        rq = streams.associate_rq(calling=b"SC\xd6U", implementation_class_uid=b"1.2.\xff")
        with connect(default) as sock:
            sock.sendall(rq)
            assert read_pdu(sock)[:1] == b"\x02"
            pdus = streams.message(
                streams.STORE_CONTEXT, streams.c_store_rq(uid), streams.data_set(uid), 4096
            )
            sock.sendall(b"".join(pdus))
            assert status_of(read_pdu(sock)) == SUCCESS
            sock.sendall(streams.A_RELEASE_RQ)
            assert read_pdu(sock)[:1] == b"\x06"


def test_tcp_delay_turns_nagle_back_on_without_an_error(receivers: Receivers) -> None:
    # Found by ruff (F821) next to the fuzzing: the accepted transport was never named, so
    # every connection to a --tcp-delay receiver logged a NameError.
    receiver = receivers.start("--tcp-delay")
    run = dcmtk("echoscu", "-aec", "INGEST", "127.0.0.1", str(receiver.port))
    assert run.returncode == 0, run.stderr
    wait_until(lambda: "association.released" in receiver.log(), 10, "the release")
    errors = [line for line in receiver.log().splitlines() if '"level":"error"' in line]
    assert not errors, errors


def _incoming_parts(receiver: Receiver) -> list:
    return list((receiver.directory / "spool" / "incoming").rglob("*.part"))


@pytest.mark.parametrize(
    "sent",
    ["the command and half the data set", "half a P-DATA-TF", "half a command set"],
)
def test_a_peer_that_stalls_mid_message_is_aborted_after_the_idle_timeout(
    default: Receiver, sent: str
) -> None:
    # The idle timer stopped when a message began and restarted only once it was answered, so a
    # peer that stopped sending halfway through held its association (and a part file) forever.
    uid = b"1.2.3.99." + str(time.monotonic_ns()).encode()
    command = streams.c_store_rq(uid)
    pdus = streams.message(streams.STORE_CONTEXT, command, streams.data_set(uid, 4000), 1000)
    partial = {
        "the command and half the data set": b"".join(pdus[:3]),
        "half a P-DATA-TF": pdus[0] + pdus[1][:500],
        "half a command set": streams.p_data(streams.STORE_CONTEXT, 0x01, command[:40]),
    }[sent]
    with connect(default) as sock:
        sock.sendall(streams.associate_rq())
        assert read_pdu(sock)[:1] == b"\x02"
        sock.sendall(partial)
        started = time.monotonic()
        answer = read_pdu(sock)
        assert answer[:1] == b"\x07", f"no A-ABORT: {answer[:16]!r}"
        assert read_pdu(sock) == b""  # closed
        assert time.monotonic() - started < 10
    wait_until(lambda: not _incoming_parts(default), 10, "the part file to go")


def _established(port: int) -> int:
    """Connections the receiver on `port` still has established."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return len(out.splitlines())


def test_a_peer_that_never_reads_its_responses_loses_its_connection(default: Receiver) -> None:
    # Closing waited for the responses in our write buffer to be read, so a peer that sent
    # requests and never read held the connection (and its buffers) forever after the abort.
    echoes = streams.p_data(streams.ECHO_CONTEXT, 0x03, streams.c_echo_rq()) * 200
    with connect(default) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(streams.associate_rq())
        assert read_pdu(sock)[:1] == b"\x02"
        sock.setblocking(False)
        # Requests, and never a read, until the responses fill the socket buffers (megabytes on
        # loopback) and the receiver's own write buffer.
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            try:
                sock.send(echoes)
            except BlockingIOError:
                time.sleep(0.05)
            except (ConnectionResetError, BrokenPipeError):
                break  # the receiver gave up on us: what this test wants
        wait_until(lambda: _established(default.port) == 0, 15, "the receiver to drop it")
