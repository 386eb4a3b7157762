"""The upper layer as a peer meets it, one PDU at a time: A-ABORT with PS3.8's source and reason
for every broken PDU, pipelined stores, releases in every order, shutdown, and the limits."""

import signal
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from pacs_ingest.shared import part10
from tests.helpers import wait_until
from tests.raw_peer import (
    A_RELEASE_RP_TYPE,
    A_RELEASE_RQ_TYPE,
    ABORT,
    RELEASE_RP,
    RELEASE_RQ,
    RawPeer,
    associate_rq,
    c_echo,
    c_store,
    pdv,
    split_pdus,
)
from tests.receivers import Receiver, Receivers, raw_request, send_raw

SERVICE_USER, SERVICE_PROVIDER = 0, 2
UNRECOGNIZED_PDU, UNEXPECTED_PDU, INVALID_PARAMETER_VALUE = 1, 2, 6
COMMAND, LAST = 0x01, 0x02


def data_set() -> bytes:
    """CT_small's data set as it is in the file (Explicit VR Little Endian)."""
    with open(get_testdata_file("CT_small.dcm"), "rb") as fp:
        part10.read_file_meta(fp)
        return fp.read()


@pytest.fixture(scope="module")
def receiver(receivers: Receivers) -> Receiver:
    return receivers.start("--receivers", "1", "--max-pdulen-rcv", "16384", "--soclose-delay", "0")


def spooled(receiver: Receiver, folder: str) -> list[Path]:
    """The objects and part files in one spool folder (not ready/'s lane records or marks)."""
    return [
        p
        for p in (receiver.directory / "spool" / folder).rglob("*")
        if p.is_file() and p.suffix in (".dcm", ".part")
    ]


class TestBrokenPdus:
    def test_an_unknown_pdu_type_is_unrecognized(self, receiver: Receiver) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(b"\x09\x00\x00\x00\x00\x04\x00\x00\x00\x00")
            assert peer.abort_received() == (SERVICE_PROVIDER, UNRECOGNIZED_PDU)

    def test_a_control_pdu_of_the_wrong_length_is_an_invalid_parameter(
        self, receiver: Receiver
    ) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(b"\x05\x00\x00\x00\x00\x06" + bytes(6))
            assert peer.abort_received() == (SERVICE_PROVIDER, INVALID_PARAMETER_VALUE)

    def test_a_p_data_longer_than_we_advertised_is_refused(self, receiver: Receiver) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(pdv(1, COMMAND, bytes(20_000)))
            assert peer.abort_received() == (SERVICE_PROVIDER, INVALID_PARAMETER_VALUE)

    def test_a_pdv_overrunning_its_pdu_is_refused(self, receiver: Receiver) -> None:
        lying = bytearray(pdv(1, COMMAND, bytes(100)))
        lying[6:10] = (500).to_bytes(4, "big")  # the PDV says 500 bytes, its PDU holds 102
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(bytes(lying))
            assert peer.abort_received() == (SERVICE_PROVIDER, INVALID_PARAMETER_VALUE)

    def test_a_pdv_on_a_context_we_did_not_accept_is_refused(self, receiver: Receiver) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(pdv(7, COMMAND | LAST, bytes(8)))
            assert peer.abort_received() == (SERVICE_PROVIDER, INVALID_PARAMETER_VALUE)

    def test_an_a_associate_ac_from_the_requestor_is_unexpected(self, receiver: Receiver) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(b"\x02\x00\x00\x00\x00\x44\x00\x01" + bytes(66))
            assert peer.abort_received() == (SERVICE_PROVIDER, UNEXPECTED_PDU)

    def test_a_request_whose_items_overrun_it_is_refused_before_any_association(
        self, receiver: Receiver
    ) -> None:
        request = bytearray(associate_rq())
        request[76:78] = (60_000).to_bytes(2, "big")  # the application context item's length
        with RawPeer(receiver.port) as peer:
            peer.send(bytes(request))
            assert peer.abort_received() == (SERVICE_PROVIDER, INVALID_PARAMETER_VALUE)

    def test_a_data_fragment_before_any_command_is_aborted_by_the_service_user(
        self, receiver: Receiver
    ) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(pdv(1, LAST, b"\x08\x00\x18\x00"))
            assert peer.abort_received() == (SERVICE_USER, 0)

    def test_a_command_set_over_64_kib_is_aborted(self, receiver: Receiver) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate()
            for _ in range(6):
                peer.send(pdv(1, COMMAND, bytes(15_000)))
            assert peer.abort_received() == (SERVICE_USER, 0)


class TestStores:
    def test_pipelined_stores_are_each_answered_and_spooled(self, receiver: Receiver) -> None:
        before = len(spooled(receiver, "ready")) + len(list(receiver.directory.rglob("archive/*")))
        with RawPeer(receiver.port) as peer:
            ac = peer.associate(associate_rq(async_window=(8, 1)))
            assert ac.user_information  # the window is granted as asked (no limit of ours)
            peer.send(
                b"".join(c_store(data_set(), f"1.2.3.{n}", message_id=n) for n in range(1, 6))
            )
            answers = peer.responses(5)
            assert sorted(a.message_id_responded_to for a in answers) == [1, 2, 3, 4, 5]
            assert {a.status for a in answers} == {0x0000}
            peer.send(RELEASE_RQ)
            assert peer.pdu()[:1] == A_RELEASE_RP_TYPE
        wait_until(
            lambda: (
                len(spooled(receiver, "ready"))
                + len([p for p in receiver.directory.rglob("archive/*") if p.is_file()])
                >= before + 5
            ),
            10,
            "five objects in the spool",
        )

    def test_a_release_right_after_pipelined_stores_answers_them_first(
        self, receiver: Receiver
    ) -> None:
        with RawPeer(receiver.port) as peer:
            peer.associate(associate_rq(async_window=(4, 1)))
            stores = b"".join(c_store(data_set(), f"1.2.4.{n}", message_id=n) for n in (1, 2, 3))
            peer.send(stores + c_echo(message_id=4) + RELEASE_RQ)
            answers = peer.responses(4)
            assert sorted(a.message_id_responded_to for a in answers) == [1, 2, 3, 4]
            assert peer.pdu()[:1] == A_RELEASE_RP_TYPE
            assert peer.closed()

    def test_a_release_in_the_middle_of_a_data_set_is_aborted(self, receiver: Receiver) -> None:
        store = split_pdus(c_store(data_set(), "1.2.5.1", message_id=1, max_pdu=4096))
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(b"".join(store[:3]))  # the command and the first two data fragments
            peer.send(RELEASE_RQ)
            assert peer.abort_received() == (SERVICE_USER, 0)
        wait_until(lambda: not spooled(receiver, "incoming"), 10, "incoming/ to be empty")

    def test_an_abort_in_the_middle_of_a_data_set_leaves_nothing_behind(
        self, receiver: Receiver
    ) -> None:
        store = split_pdus(c_store(data_set(), "1.2.6.1", message_id=1, max_pdu=4096))
        with RawPeer(receiver.port) as peer:
            peer.associate()
            peer.send(b"".join(store[:3]))
            wait_until(lambda: bool(spooled(receiver, "incoming")), 10, "the part file")
            peer.send(ABORT)
            assert peer.closed()
        wait_until(lambda: not spooled(receiver, "incoming"), 10, "incoming/ to be empty")


class TestProtocolVersion:
    def test_any_version_with_bit_0_set_is_accepted_as_by_the_reference(
        self, receiver: Receiver
    ) -> None:
        answer = send_raw(
            receiver.port, raw_request(receiver.port, protocol_version=3), wait_for_close=False
        )
        assert answer.pdu[:1] == b"\x02"


def test_associations_over_the_limit_are_refused_as_transient(receivers: Receivers) -> None:
    limited = receivers.start("--receivers", "1", "--max-associations", "2")
    with RawPeer(limited.port) as first, RawPeer(limited.port) as second:
        first.associate()
        second.associate()
        answer = send_raw(limited.port, raw_request(limited.port))
        assert answer.rj == (2, 3, 2)  # transient, presentation provider, local limit exceeded
    wait_until(
        lambda: (
            send_raw(limited.port, raw_request(limited.port), wait_for_close=False).pdu[:1]
            == b"\x02"
        ),
        10,
        "room for a new association",
    )


class TestShutdown:
    def test_an_idle_association_is_released_when_the_receiver_stops(
        self, receivers: Receivers
    ) -> None:
        stopping = receivers.start("--receivers", "1")
        with RawPeer(stopping.port) as peer:
            peer.associate()
            stopping.command.process.send_signal(signal.SIGTERM)
            assert peer.pdu()[:1] == A_RELEASE_RQ_TYPE
            peer.send(RELEASE_RP)
            assert peer.closed()
        assert stopping.command.process.wait(20) == 0
        assert '"association.released"' in stopping.log()

    def test_a_release_collision_ends_with_both_replies(self, receivers: Receivers) -> None:
        stopping = receivers.start("--receivers", "1")
        with RawPeer(stopping.port) as peer:
            peer.associate()
            stopping.command.process.send_signal(signal.SIGTERM)
            assert peer.pdu()[:1] == A_RELEASE_RQ_TYPE
            # We, the requestor, asked for release at the same moment (PS3.8 release collision):
            # the requestor answers first, then the acceptor.
            peer.send(RELEASE_RQ)
            peer.send(RELEASE_RP)
            assert peer.pdu()[:1] == A_RELEASE_RP_TYPE
            assert peer.closed()
        assert stopping.command.process.wait(20) == 0
