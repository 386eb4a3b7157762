"""The shared network options of the reference as senders and operators see them: socket close
delays, PDU lengths, the async window, timeouts, socket buffers and TCP_NODELAY."""

import socket
import subprocess
import time
from pathlib import Path

import pytest
from pynetdicom.pdu import A_RELEASE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import AsynchronousOperationsWindowNegotiation

from tests.helpers import traced, wait_until
from tests.receivers import (
    IMPLICIT_VR_LE,
    VERIFICATION,
    Receiver,
    Receivers,
    associate,
    dcmtk,
    pdus_received,
    raw_request,
    read_pdu,
    rejection,
    send_raw,
    socket_memory,
)


@pytest.fixture(scope="module")
def tuned(receivers: Receivers) -> Receiver:
    """A receiver with every network option of the reference set away from its default."""
    return receivers.start(
        "--accept",
        "PYNETDICOM",
        "ECHOSCU",
        "--soclose-delay",
        "300",
        "--max-pdulen-rcv",
        "8000H",
        "--max-pdulen-snd",
        "50",
        "--max-ops-invoked",
        "2",
        "--max-ops-performed",
        "3",
        "--request-timeout",
        "700",
        "--idle-timeout",
        "900",
        "--sorcv-buffer",
        "65536",
        "--sosnd-buffer",
        "32768",
        "--release-timeout",
        "1",
        "--not-pack-pdv",
    )


class TestNetworkOptions:
    def test_a_calling_ae_title_not_in_accept_is_rejected_with_reason_3(
        self, tuned: Receiver
    ) -> None:
        run = dcmtk("echoscu", "-aet", "STRANGER", "-aec", "INGEST", "127.0.0.1", str(tuned.port))
        assert rejection(run.stdout + run.stderr) == (
            "Rejected Permanent",
            "Service User",
            "Calling AE Title Not Recognized",
        )
        run = dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "INGEST", "127.0.0.1", str(tuned.port))
        assert run.returncode == 0, run.stderr

    def test_the_called_ae_title_is_checked_before_the_calling_one(self, tuned: Receiver) -> None:
        request = raw_request(tuned.port, called="SOMEONE", calling="STRANGER")
        assert send_raw(tuned.port, request).rj == (1, 1, 7)

    def test_soclose_delay_holds_the_socket_open_after_a_rejection(self, tuned: Receiver) -> None:
        answer = send_raw(tuned.port, raw_request(tuned.port, calling="STRANGER"))
        assert answer.rj == (1, 1, 3)
        assert 0.28 <= answer.closed_after_s < 1.5

    def test_soclose_delay_holds_the_socket_open_after_a_release(self, tuned: Receiver) -> None:
        with socket.create_connection(("127.0.0.1", tuned.port), timeout=10) as sock:
            sock.sendall(raw_request(tuned.port, calling="PYNETDICOM"))
            assert read_pdu(sock)[:1] == b"\x02"
            sock.sendall(A_RELEASE_RQ().encode())
            assert read_pdu(sock)[:1] == b"\x06"
            released = time.monotonic()
            assert sock.recv(1) == b""
            assert 0.28 <= time.monotonic() - released < 1.5

    def test_max_pdulen_rcv_is_the_maximum_length_in_the_ac(self, tuned: Receiver) -> None:
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            assert assoc.acceptor.maximum_length == 0x8000
        finally:
            assoc.release()

    def test_max_pdulen_snd_caps_the_pdus_we_send(self, tuned: Receiver) -> None:
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            received = pdus_received(assoc)
            assert assoc.send_c_echo().Status == 0
            data = [pdu for pdu in received if isinstance(pdu, P_DATA_TF)]
            assert len(data) >= 2  # a C-ECHO-RSP command does not fit in one 50-byte PDU
            assert all(len(pdu.encode()) <= 50 + 6 for pdu in data)
        finally:
            assoc.release()

    def test_the_async_window_is_the_smaller_of_ours_and_the_peers(self, tuned: Receiver) -> None:
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked = 5
        window.maximum_number_operations_performed = 0
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])], extended=[window])
        try:
            # invoked: min(5, our performed 3); performed: their 0 is unlimited, so our invoked 2
            assert assoc.acceptor.asynchronous_operations == (3, 2)
        finally:
            assoc.release()

    def test_a_connection_without_a_request_is_closed_without_a_pdu(self, tuned: Receiver) -> None:
        with socket.create_connection(("127.0.0.1", tuned.port), timeout=10) as sock:
            opened = time.monotonic()
            assert sock.recv(1) == b""
            assert 0.6 <= time.monotonic() - opened < 3

    def test_an_idle_association_is_aborted(self, tuned: Receiver) -> None:
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        opened = time.monotonic()
        wait_until(lambda: assoc.is_aborted, 10, "an A-ABORT")
        assert 0.8 <= time.monotonic() - opened < 3

    def test_an_association_in_use_is_not_idle(self, tuned: Receiver) -> None:
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            for _ in range(4):
                time.sleep(0.5)
                assert assoc.send_c_echo().Status == 0
            assert assoc.is_established
        finally:
            assoc.release()

    def test_socket_buffers_are_set_on_the_receivers_end(self, tuned: Receiver) -> None:
        assoc = associate(tuned.port, [(VERIFICATION, [IMPLICIT_VR_LE])])
        try:
            memory = socket_memory(tuned.port)
            assert memory["rb"] == 2 * 65536  # Linux doubles what setsockopt asks for
            assert memory["tb"] == 2 * 32768
        finally:
            assoc.release()

    def test_options_without_effect_on_an_scp_are_accepted(self, tuned: Receiver) -> None:
        # --release-timeout and --not-pack-pdv: the association works as without them.
        run = dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "INGEST", "127.0.0.1", str(tuned.port))
        assert run.returncode == 0, run.stderr


def _nodelay_calls(receiver: Receiver) -> str:
    """The setsockopt(TCP_NODELAY) calls the receiver process makes while a peer connects."""
    child = subprocess.run(
        ["pgrep", "-P", str(receiver.command.pid), "-f", "multiprocessing"],
        capture_output=True,
        text=True,
    ).stdout.split()
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-e", "trace=setsockopt", *(f"-p{pid}" for pid in child)],
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: traced(int(pid) for pid in child), 10, "strace to attach")
    run = dcmtk("echoscu", "-aec", "INGEST", "127.0.0.1", str(receiver.port))
    assert run.returncode == 0, run.stderr
    # A traced call returns only once strace has printed it: every call is in the pipe by now.
    tracer.terminate()
    return "\n".join(line for line in tracer.communicate()[1].splitlines() if "TCP_NODELAY" in line)


@pytest.fixture(scope="module")
def default(receivers: Receivers) -> Receiver:
    return receivers.start()


@pytest.fixture(scope="module")
def not_async(receivers: Receivers) -> Receiver:
    return receivers.start("--not-async", "--max-ops-invoked", "7", "--tcp-delay")


def test_tcp_nodelay_is_set_unless_tcp_delay(default: Receiver, not_async: Receiver) -> None:
    assert "TCP_NODELAY, [1]" in _nodelay_calls(default)
    with_delay = _nodelay_calls(not_async).splitlines()
    # asyncio sets TCP_NODELAY on every transport; --tcp-delay must turn it off after that.
    assert with_delay and "TCP_NODELAY, [0]" in with_delay[-1], with_delay


def test_not_async_answers_any_window_with_one_operation_at_a_time(not_async: Receiver) -> None:
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 5
    window.maximum_number_operations_performed = 5
    assoc = associate(not_async.port, [(VERIFICATION, [IMPLICIT_VR_LE])], extended=[window])
    try:
        assert assoc.acceptor.asynchronous_operations == (1, 1)  # and --max-ops-invoked ignored
    finally:
        assoc.release()


def _threads(receiver: Receiver) -> int:
    children = subprocess.run(
        ["pgrep", "-P", str(receiver.command.pid)], capture_output=True, text=True
    ).stdout.split()
    total = 0
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(status.split("Threads:")[1].split()[0])
    return total


def test_connections_closed_before_their_request_leave_no_thread_behind(
    default: Receiver,
) -> None:
    before = _threads(default)
    for _ in range(20):
        socket.create_connection(("127.0.0.1", default.port)).close()
    wait_until(lambda: _threads(default) <= before, 10, "the receiver's threads to end")
