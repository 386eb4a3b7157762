"""DIMSE command sets (PS3.7 6.3, 9.3, 10.3; Annex E), decoded and encoded by hand.

A command set is a short run of group 0000 elements in Implicit VR Little Endian. Requests are
decoded into a `Command` holding the fields a Storage SCP reads; responses are encoded from a
handful of values. pydicom would build a Dataset per message, which costs more than the rest of a
small store.
"""

import struct
from dataclasses import dataclass

_ELEMENT = struct.Struct("<HHI")  # group, element, value length

# Command elements (PS3.7 Annex E)
COMMAND_GROUP_LENGTH = 0x0000
AFFECTED_SOP_CLASS_UID = 0x0002
REQUESTED_SOP_CLASS_UID = 0x0003
COMMAND_FIELD = 0x0100
MESSAGE_ID = 0x0110
MESSAGE_ID_BEING_RESPONDED_TO = 0x0120
PRIORITY = 0x0700
COMMAND_DATA_SET_TYPE = 0x0800
STATUS = 0x0900
ERROR_COMMENT = 0x0902
AFFECTED_SOP_INSTANCE_UID = 0x1000

NO_DATA_SET = 0x0101  # Command Data Set Type when no data set follows

# DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3)
SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110
NO_SUCH_SOP_CLASS = 0x0118
SOP_CLASS_NOT_SUPPORTED = 0x0122
UNRECOGNIZED_OPERATION = 0x0211
MISTYPED_ARGUMENT = 0x0212
ERROR_COMMENT_MAX = 64  # (0000,0902) is an LO

# Command Field values (PS3.7 E.1); a response is its request's value with 0x8000 set.
C_STORE_RQ = 0x0001
C_GET_RQ = 0x0010
C_FIND_RQ = 0x0020
C_MOVE_RQ = 0x0021
C_ECHO_RQ = 0x0030
N_EVENT_REPORT_RQ = 0x0100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_CREATE_RQ = 0x0140
N_DELETE_RQ = 0x0150
C_CANCEL_RQ = 0x0FFF
RESPONSE = 0x8000

REQUEST_NAMES = {
    C_STORE_RQ: "C-STORE",
    C_GET_RQ: "C-GET",
    C_FIND_RQ: "C-FIND",
    C_MOVE_RQ: "C-MOVE",
    C_ECHO_RQ: "C-ECHO",
    N_EVENT_REPORT_RQ: "N-EVENT-REPORT",
    N_GET_RQ: "N-GET",
    N_SET_RQ: "N-SET",
    N_ACTION_RQ: "N-ACTION",
    N_CREATE_RQ: "N-CREATE",
    N_DELETE_RQ: "N-DELETE",
    C_CANCEL_RQ: "C-CANCEL",
}
# Requests naming their SOP class as Requested (0000,0003); the others as Affected (0000,0002).
_NAMES_REQUESTED_CLASS = frozenset({N_GET_RQ, N_SET_RQ, N_ACTION_RQ, N_DELETE_RQ})
MAX_COMMAND_SET = 64 * 1024  # far above any real command set; more is an attack


class CommandError(ValueError):
    """Raised for a command set that is not a well-formed group 0000."""


@dataclass(frozen=True, slots=True)
class Command:
    """The fields of a DIMSE message that a Storage SCP reads."""

    command_field: int
    message_id: int
    sop_class_uid: str  # Affected, or Requested for N-GET/SET/ACTION/DELETE; "" if absent
    sop_instance_uid: str  # Affected SOP Instance UID; "" if absent
    has_data_set: bool

    @property
    def is_response(self) -> bool:
        return bool(self.command_field & RESPONSE)

    @property
    def name(self) -> str:
        return REQUEST_NAMES.get(self.command_field, f"command 0x{self.command_field:04X}")


def _uid(value: bytes) -> str:
    # A byte above 0x7F becomes "?", as the reference's US-ASCII decoding has it, so the UID
    # can go into the file meta and the response.
    return value.rstrip(b"\x00 ").decode("ascii", "replace").replace("\ufffd", "?")


def _us(value: bytes, tag: int) -> int:
    if len(value) != 2:
        raise CommandError(f"(0000,{tag:04X}) is US but has {len(value)} bytes")
    return int.from_bytes(value, "little")


def decode(encoded: bytes) -> Command:
    """Decode a whole command set; CommandError if it is malformed or lacks its Command Field."""
    size = len(encoded)
    if size > MAX_COMMAND_SET:
        raise CommandError(f"command set of {size} bytes")
    values: dict[int, bytes] = {}
    offset = 0
    while offset < size:
        if offset + 8 > size:
            raise CommandError("command set ends inside an element header")
        group, element, length = _ELEMENT.unpack_from(encoded, offset)
        offset += 8
        if group != 0x0000:
            raise CommandError(f"element ({group:04X},{element:04X}) in a command set")
        end = offset + length
        if end > size:
            raise CommandError(f"(0000,{element:04X}) declares {length} bytes past the end")
        values[element] = encoded[offset:end]
        offset = end
    if COMMAND_FIELD not in values:
        raise CommandError("command set without Command Field (0000,0100)")
    field = _us(values[COMMAND_FIELD], COMMAND_FIELD)
    data_set_type = values.get(COMMAND_DATA_SET_TYPE)
    requested = field in _NAMES_REQUESTED_CLASS
    class_tag = REQUESTED_SOP_CLASS_UID if requested else AFFECTED_SOP_CLASS_UID
    return Command(
        command_field=field,
        message_id=_us(values[MESSAGE_ID], MESSAGE_ID) if MESSAGE_ID in values else 0,
        sop_class_uid=_uid(values.get(class_tag, b"")),
        sop_instance_uid=_uid(values.get(AFFECTED_SOP_INSTANCE_UID, b"")),
        has_data_set=(
            data_set_type is not None and _us(data_set_type, COMMAND_DATA_SET_TYPE) != NO_DATA_SET
        ),
    )


def _element(element: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0x0000, element, len(value)) + value


def _padded(text: str, pad: bytes) -> bytes:
    raw = text.encode("ascii", "replace")
    return raw + pad if len(raw) % 2 else raw


def response(
    request: Command,
    status: int,
    *,
    with_uids: bool,
    error_comment: str = "",
) -> bytes:
    """The command set answering `request`: Command Field, Message ID Being Responded To,
    Command Data Set Type (none), Status, an Error Comment if given, and, `with_uids`, the
    request's Affected SOP Class and Instance UIDs."""
    elements = []
    if with_uids and request.sop_class_uid:
        elements.append(_element(AFFECTED_SOP_CLASS_UID, _padded(request.sop_class_uid, b"\0")))
    elements += [
        _element(COMMAND_FIELD, (request.command_field | RESPONSE).to_bytes(2, "little")),
        _element(MESSAGE_ID_BEING_RESPONDED_TO, request.message_id.to_bytes(2, "little")),
        _element(COMMAND_DATA_SET_TYPE, NO_DATA_SET.to_bytes(2, "little")),
        _element(STATUS, status.to_bytes(2, "little")),
    ]
    if error_comment:
        elements.append(_element(ERROR_COMMENT, _padded(error_comment[:ERROR_COMMENT_MAX], b" ")))
    if with_uids and request.sop_instance_uid:
        elements.append(
            _element(AFFECTED_SOP_INSTANCE_UID, _padded(request.sop_instance_uid, b"\0"))
        )
    body = b"".join(elements)
    return _element(COMMAND_GROUP_LENGTH, len(body).to_bytes(4, "little")) + body
