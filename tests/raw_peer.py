"""A peer that speaks the upper layer byte by byte: for conversations no DICOM library would
hold (pipelined stores, releases at odd moments, broken PDUs). Its PDUs are pynetdicom's
encodings, so what the receiver parses is an independent implementation's output."""

import socket
import struct
from dataclasses import dataclass
from io import BytesIO

from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu import A_ASSOCIATE_AC, A_ASSOCIATE_RQ, P_DATA_TF
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    MaximumLengthNotification,
)
from pynetdicom.presentation import build_context

from tests.receivers import read_pdu

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
A_ASSOCIATE_AC_TYPE, P_DATA_TF_TYPE, A_RELEASE_RQ_TYPE, A_RELEASE_RP_TYPE, A_ABORT_TYPE = (
    b"\x02",
    b"\x04",
    b"\x05",
    b"\x06",
    b"\x07",
)
RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"
ABORT = b"\x07\x00\x00\x00\x00\x04\x00\x00\x00\x00"


def associate_rq(
    *,
    called: str = "INGEST",
    async_window: tuple[int, int] | None = None,
    max_length: int = 16382,
) -> bytes:
    """An A-ASSOCIATE-RQ proposing CT Image Storage (context 1) and Verification (context 3)."""
    primitive = A_ASSOCIATE()
    primitive.application_context_name = "1.2.840.10008.3.1.1.1"
    primitive.calling_ae_title = "RAWPEER"
    primitive.called_ae_title = called
    contexts = [build_context(CT_IMAGE_STORAGE, [EXPLICIT_VR_LE]), build_context(VERIFICATION)]
    for index, context in enumerate(contexts):
        context.context_id = 2 * index + 1
    primitive.presentation_context_definition_list = contexts
    length = MaximumLengthNotification()
    length.maximum_length_received = max_length
    items: list = [length]
    if async_window is not None:
        window = AsynchronousOperationsWindowNegotiation()
        window.maximum_number_operations_invoked, window.maximum_number_operations_performed = (
            async_window
        )
        items.append(window)
    primitive.user_information = items
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(primitive)
    return pdu.encode()


def _message_pdus(message: DIMSEMessage, context_id: int, max_pdu: int) -> bytes:
    encoded = b""
    for primitive in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        encoded += pdu.encode()
    return encoded


def c_store(
    data_set: bytes, sop_instance_uid: str, *, message_id: int, max_pdu: int = 16382
) -> bytes:
    """The P-DATA-TF PDUs of a C-STORE-RQ on context 1 carrying `data_set` verbatim."""
    primitive = C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = CT_IMAGE_STORAGE
    primitive.AffectedSOPInstanceUID = sop_instance_uid
    primitive.Priority = 0
    primitive.DataSet = BytesIO(data_set)
    message = C_STORE_RQ()
    message.primitive_to_message(primitive)
    return _message_pdus(message, 1, max_pdu)


def c_echo(*, message_id: int) -> bytes:
    primitive = C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = VERIFICATION
    message = C_ECHO_RQ()
    message.primitive_to_message(primitive)
    return _message_pdus(message, 3, 16382)


def split_pdus(stream: bytes) -> list[bytes]:
    """The PDUs of a stream of whole PDUs."""
    pdus, offset = [], 0
    while offset < len(stream):
        length = int.from_bytes(stream[offset + 2 : offset + 6], "big")
        pdus.append(stream[offset : offset + 6 + length])
        offset += 6 + length
    return pdus


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    """One P-DATA-TF holding one PDV, built by hand (so it may lie)."""
    item = struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment
    return struct.pack(">BxI", 0x04, len(item)) + item


@dataclass(frozen=True)
class Response:
    """What a C-xxx-RSP said (command set elements of interest)."""

    message_id_responded_to: int
    status: int


def responses(pdus: list[bytes]) -> list[Response]:
    """Decode the DIMSE responses carried by P-DATA-TF PDUs (command fragments only)."""
    found, command = [], b""
    for pdu in pdus:
        offset = 6
        while offset < len(pdu):
            length, _, control = struct.unpack_from(">IBB", pdu, offset)
            fragment = pdu[offset + 6 : offset + 4 + length]
            offset += 4 + length
            if control & 0x01:
                command += fragment
                if control & 0x02:
                    found.append(_response(command))
                    command = b""
    return found


def _response(command: bytes) -> Response:
    values, offset = {}, 0
    while offset < len(command):
        _, element, length = struct.unpack_from("<HHI", command, offset)
        values[element] = command[offset + 8 : offset + 8 + length]
        offset += 8 + length
    return Response(
        int.from_bytes(values[0x0120], "little"), int.from_bytes(values[0x0900], "little")
    )


class RawPeer:
    """One TCP connection to a receiver, spoken to in whole PDUs."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def pdu(self) -> bytes:
        """The next whole PDU, or b"" once the receiver closed the connection."""
        return read_pdu(self.sock)

    def associate(self, request: bytes | None = None) -> A_ASSOCIATE_AC:
        self.send(request or associate_rq())
        answer = self.pdu()
        assert answer[:1] == A_ASSOCIATE_AC_TYPE, f"not an A-ASSOCIATE-AC: {answer[:10]!r}"
        ac = A_ASSOCIATE_AC()
        ac.decode(answer)
        return ac

    def abort_received(self) -> tuple[int, int]:
        """(source, reason) of the A-ABORT that must come next; then the connection closes."""
        answer = self.pdu()
        assert answer[:1] == A_ABORT_TYPE, f"not an A-ABORT: {answer[:10]!r}"
        assert self.closed(), "the receiver kept the connection open after its A-ABORT"
        return answer[8], answer[9]

    def closed(self) -> bool:
        """Whether the receiver closes the connection (without sending anything more)."""
        return self.sock.recv(1) == b""

    def responses(self, count: int) -> list[Response]:
        """Read P-DATA-TF PDUs until `count` DIMSE responses have arrived."""
        pdus: list[bytes] = []
        while len(responses(pdus)) < count:
            pdu = self.pdu()
            assert pdu[:1] == P_DATA_TF_TYPE, f"expected P-DATA-TF, got {pdu[:10]!r}"
            pdus.append(pdu)
        return responses(pdus)
