"""Upper-layer PDUs (PS3.8 9.3): their types, the A-ABORT reasons, and the fixed-form PDUs we
send, encoded by hand (each is a handful of bytes; the A-ASSOCIATE PDUs are in
`receiver.associate_pdu`, P-DATA-TF parsing in `receiver.framing`)."""

import struct

# PDU types (PS3.8 9.3.1)
A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

HEADER = struct.Struct(">BxI")  # type, reserved, length of what follows
HEADER_LENGTH = HEADER.size
PDV_HEADER = struct.Struct(">IBB")  # item length, presentation context ID, message control header
PDV_HEADER_LENGTH = PDV_HEADER.size
# The length of the control PDUs (A-RELEASE-RQ/RP, A-ABORT, A-ASSOCIATE-RJ) after the header.
CONTROL_LENGTH = 4

# Message control header bits (PS3.8 E.2)
COMMAND = 0x01
LAST_FRAGMENT = 0x02

# A-ABORT source (PS3.8 9.3.8)
SERVICE_USER = 0x00
SERVICE_PROVIDER = 0x02
# A-ABORT reasons, significant when the source is the service provider
REASON_NOT_SPECIFIED = 0x00
UNRECOGNIZED_PDU = 0x01
UNEXPECTED_PDU = 0x02
UNRECOGNIZED_PDU_PARAMETER = 0x04
UNEXPECTED_PDU_PARAMETER = 0x05
INVALID_PDU_PARAMETER_VALUE = 0x06

_CONTROL = struct.Struct(">BxIxxBB")


def a_abort(source: int, reason: int) -> bytes:
    return _CONTROL.pack(A_ABORT, CONTROL_LENGTH, source, reason)


def a_release_rq() -> bytes:
    return _CONTROL.pack(A_RELEASE_RQ, CONTROL_LENGTH, 0, 0)


def a_release_rp() -> bytes:
    return _CONTROL.pack(A_RELEASE_RP, CONTROL_LENGTH, 0, 0)


def a_associate_rj(result: int, source: int, reason: int) -> bytes:
    return struct.pack(">BxIxBBB", A_ASSOCIATE_RJ, CONTROL_LENGTH, result, source, reason)


def p_data_tf(context_id: int, message: bytes, *, command: bool, max_fragment: int) -> bytes:
    """P-DATA-TF PDUs carrying `message` (a command set, or a data set) in fragments of at most
    `max_fragment` bytes (0: one fragment), one PDV per PDU, the last flagged as such."""
    size = max_fragment or len(message) or 1
    control = COMMAND if command else 0
    pdus = []
    for start in range(0, max(len(message), 1), size):
        fragment = message[start : start + size]
        last = LAST_FRAGMENT if start + size >= len(message) else 0
        pdus.append(
            HEADER.pack(P_DATA_TF, PDV_HEADER_LENGTH + len(fragment))
            + PDV_HEADER.pack(len(fragment) + 2, context_id, control | last)
            + fragment
        )
    return b"".join(pdus)
