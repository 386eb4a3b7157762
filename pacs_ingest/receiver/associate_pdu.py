"""A-ASSOCIATE-RQ decoding and A-ASSOCIATE-AC encoding (PS3.8 9.3.2, 9.3.3 and Annex D; PS3.7
Annex D.3.3), by hand.

pynetdicom's PDU classes decode a 128-context request in 5 to 17 ms, more than a whole small store
costs us; a modality that opens one association per object pays that every time. This decoder
walks the items once, checks every length against what encloses it, and raises `PduError` with
the A-ABORT reason PS3.8 gives for what it found. Unknown items are ignored, as PS3.7 D.3.3 asks
of user information sub-items, so later extensions never break an association.
"""

import struct
from dataclasses import dataclass

from pacs_ingest.receiver.negotiation import (
    Acceptance,
    AssociateRequest,
    CommonExtended,
    ProposedContext,
)
from pacs_ingest.receiver.pdu import (
    A_ASSOCIATE_AC,
    HEADER,
    INVALID_PDU_PARAMETER_VALUE,
)

# Item types
APPLICATION_CONTEXT = 0x10
PRESENTATION_CONTEXT_RQ = 0x20
PRESENTATION_CONTEXT_AC = 0x21
ABSTRACT_SYNTAX = 0x30
TRANSFER_SYNTAX = 0x40
USER_INFORMATION = 0x50
MAXIMUM_LENGTH = 0x51
IMPLEMENTATION_CLASS_UID = 0x52
ASYNCHRONOUS_OPERATIONS_WINDOW = 0x53
ROLE_SELECTION = 0x54
IMPLEMENTATION_VERSION_NAME = 0x55
COMMON_EXTENDED_NEGOTIATION = 0x57
USER_IDENTITY_RQ = 0x58
USER_IDENTITY_AC = 0x59

_FIXED = struct.Struct(">Hxx16s16s32s")  # protocol version, called AE, calling AE, reserved
_ITEM = struct.Struct(">BxH")
_U16 = struct.Struct(">H")


class PduError(ValueError):
    """Raised for a PDU that breaks PS3.8; `reason` is the A-ABORT reason to send."""

    def __init__(self, message: str, reason: int = INVALID_PDU_PARAMETER_VALUE) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class UserIdentity:
    identity_type: int
    positive_response_requested: bool
    primary_field: bytes


@dataclass(frozen=True, slots=True)
class AssociateRQ:
    """What an A-ASSOCIATE-RQ said: the facts negotiation decides on, and what the AC echoes."""

    protocol_version: int
    request: AssociateRequest
    called_field: bytes  # the 16-byte fields as received, echoed in the AC
    calling_field: bytes
    reserved: bytes
    maximum_length: int  # 0: no limit, or the peer did not say
    implementation_class_uid: str
    implementation_version_name: str
    user_identity: UserIdentity | None


def _ascii(raw: bytes) -> str:
    """Bytes of a field meant to be ASCII, read as the reference (Java's US-ASCII) reads them: a
    byte above 0x7F becomes "?", so whatever we echo (the AC, the file meta) encodes again."""
    return raw.decode("ascii", "replace").replace("\ufffd", "?")


def _text(raw: bytes) -> str:
    return _ascii(raw.rstrip(b"\x00 "))


def _items(data: bytes, start: int, end: int, where: str) -> list[tuple[int, int, int]]:
    """(type, value start, value end) of each item in data[start:end]."""
    items = []
    while start < end:
        if start + _ITEM.size > end:
            raise PduError(f"{where}: item header truncated")
        item_type, length = _ITEM.unpack_from(data, start)
        value = start + _ITEM.size
        if value + length > end:
            raise PduError(f"{where}: item 0x{item_type:02X} of {length} bytes overruns its PDU")
        items.append((item_type, value, value + length))
        start = value + length
    return items


def _field(data: bytes, offset: int, end: int, where: str) -> tuple[bytes, int]:
    """A 2-byte-length-prefixed field of a sub-item; the field and the offset after it."""
    if offset + 2 > end:
        raise PduError(f"{where}: field length truncated")
    (length,) = _U16.unpack_from(data, offset)
    if offset + 2 + length > end:
        raise PduError(f"{where}: field of {length} bytes overruns its item")
    return data[offset + 2 : offset + 2 + length], offset + 2 + length


def _presentation_context(data: bytes, start: int, end: int) -> ProposedContext:
    if end - start < 4:
        raise PduError("presentation context item shorter than 4 bytes")
    context_id = data[start]
    abstract, syntaxes = "", []
    for item_type, value, value_end in _items(data, start + 4, end, "presentation context"):
        if item_type == ABSTRACT_SYNTAX:
            abstract = _text(data[value:value_end])
        elif item_type == TRANSFER_SYNTAX:
            syntaxes.append(_text(data[value:value_end]))
    return ProposedContext(context_id, abstract, tuple(syntaxes))


class _UserInformation:
    """The sub-items of a user information item."""

    def __init__(self, data: bytes, start: int, end: int) -> None:
        self.maximum_length = 0
        self.implementation_class_uid = ""
        self.implementation_version_name = ""
        self.async_ops: tuple[int, int] | None = None
        self.roles: dict[str, tuple[bool, bool]] = {}
        self.common_extended: dict[str, CommonExtended] = {}
        self.identity: UserIdentity | None = None
        readers = {
            MAXIMUM_LENGTH: self._maximum_length,
            IMPLEMENTATION_CLASS_UID: self._implementation_class_uid,
            IMPLEMENTATION_VERSION_NAME: self._implementation_version_name,
            ASYNCHRONOUS_OPERATIONS_WINDOW: self._async_window,
            ROLE_SELECTION: self._role,
            COMMON_EXTENDED_NEGOTIATION: self._common_extended,
            USER_IDENTITY_RQ: self._identity,
        }
        for item_type, value, value_end in _items(data, start, end, "user information"):
            if reader := readers.get(item_type):
                reader(data[value:value_end])

    def _maximum_length(self, value: bytes) -> None:
        if len(value) != 4:
            raise PduError(f"maximum length sub-item of {len(value)} bytes, not 4")
        self.maximum_length = int.from_bytes(value, "big")

    def _implementation_class_uid(self, value: bytes) -> None:
        self.implementation_class_uid = _text(value)

    def _implementation_version_name(self, value: bytes) -> None:
        self.implementation_version_name = _text(value)

    def _async_window(self, value: bytes) -> None:
        if len(value) != 4:
            raise PduError(f"asynchronous operations window of {len(value)} bytes, not 4")
        invoked, performed = struct.unpack(">HH", value)
        self.async_ops = (invoked, performed)

    def _role(self, value: bytes) -> None:
        uid, offset = _field(value, 0, len(value), "SCP/SCU role selection")
        if offset + 2 != len(value):
            raise PduError("SCP/SCU role selection: roles missing or trailing bytes")
        self.roles.setdefault(_text(uid), (bool(value[offset]), bool(value[offset + 1])))

    def _common_extended(self, value: bytes) -> None:
        where = "SOP Class Common Extended Negotiation"
        # (the sub-item version is in the item header, where other items have a reserved byte)
        sop_class, offset = _field(value, 0, len(value), where)
        service_class, offset = _field(value, offset, len(value), where)
        related_block, _ = _field(value, offset, len(value), where)
        related, position = [], 0
        while position < len(related_block):
            uid, position = _field(related_block, position, len(related_block), where)
            related.append(_text(uid))
        self.common_extended[_text(sop_class)] = CommonExtended(
            _text(service_class), tuple(related)
        )

    def _identity(self, value: bytes) -> None:
        if len(value) < 2:
            raise PduError("user identity sub-item shorter than 2 bytes")
        primary, offset = _field(value, 2, len(value), "user identity")
        _field(value, offset, len(value), "user identity")  # the secondary field: checked, unused
        self.identity = UserIdentity(value[0], bool(value[1]), primary)


def decode_rq(pdu: bytes) -> AssociateRQ:
    """Decode a whole A-ASSOCIATE-RQ PDU (header included); PduError if it breaks PS3.8."""
    end = len(pdu)
    if end < HEADER.size + _FIXED.size:
        raise PduError(f"A-ASSOCIATE-RQ of {end} bytes is shorter than its fixed fields")
    version, called, calling, reserved = _FIXED.unpack_from(pdu, HEADER.size)
    application_context = ""
    contexts: list[ProposedContext] = []
    user = None
    for item_type, value, value_end in _items(pdu, HEADER.size + _FIXED.size, end, "RQ"):
        if item_type == APPLICATION_CONTEXT:
            application_context = _text(pdu[value:value_end])
        elif item_type == PRESENTATION_CONTEXT_RQ:
            contexts.append(_presentation_context(pdu, value, value_end))
        elif item_type == USER_INFORMATION:
            user = _UserInformation(pdu, value, value_end)
    if len({context.context_id for context in contexts}) != len(contexts):
        raise PduError("presentation context IDs are not unique")
    user = user or _UserInformation(b"", 0, 0)
    return AssociateRQ(
        protocol_version=version,
        request=AssociateRequest(
            application_context=application_context,
            called_ae_title=_ascii(called),
            calling_ae_title=_ascii(calling),
            contexts=tuple(contexts),
            roles=user.roles,
            common_extended=user.common_extended,
            async_ops=user.async_ops,
        ),
        called_field=called,
        calling_field=calling,
        reserved=reserved,
        maximum_length=user.maximum_length,
        implementation_class_uid=user.implementation_class_uid,
        implementation_version_name=user.implementation_version_name,
        user_identity=user.identity,
    )


def _item(item_type: int, value: bytes) -> bytes:
    return _ITEM.pack(item_type, len(value)) + value


def _uid(text: str) -> bytes:
    return text.encode("ascii")


@dataclass(frozen=True, slots=True)
class Acceptor:
    """Who we are in every A-ASSOCIATE-AC."""

    maximum_length: int  # --max-pdulen-rcv
    implementation_class_uid: str
    implementation_version_name: str


def encode_ac(
    rq: AssociateRQ,
    acceptance: Acceptance,
    acceptor: Acceptor,
    identity_response: bytes | None,
) -> bytes:
    """The A-ASSOCIATE-AC answering `rq` with `acceptance`; fields PS3.8 says to echo, echoed."""
    contexts = b"".join(
        _item(
            PRESENTATION_CONTEXT_AC,
            bytes((result.context_id, 0, result.result, 0))
            + _item(TRANSFER_SYNTAX, _uid(result.transfer_syntax)),
        )
        for result in acceptance.contexts
    )
    user = [
        _item(MAXIMUM_LENGTH, acceptor.maximum_length.to_bytes(4, "big")),
        _item(IMPLEMENTATION_CLASS_UID, _uid(acceptor.implementation_class_uid)),
    ]
    if acceptance.async_ops is not None:
        invoked, performed = acceptance.async_ops
        user.append(_item(ASYNCHRONOUS_OPERATIONS_WINDOW, struct.pack(">HH", invoked, performed)))
    for role in acceptance.roles:
        uid = _uid(role.sop_class_uid)
        user.append(_item(ROLE_SELECTION, _U16.pack(len(uid)) + uid + bytes((role.scu, role.scp))))
    user.append(_item(IMPLEMENTATION_VERSION_NAME, _uid(acceptor.implementation_version_name)))
    if identity_response is not None:
        user.append(_item(USER_IDENTITY_AC, _U16.pack(len(identity_response)) + identity_response))
    body = (
        _FIXED.pack(0x0001, rq.called_field, rq.calling_field, rq.reserved)
        + _item(APPLICATION_CONTEXT, _uid(rq.request.application_context))
        + contexts
        + _item(USER_INFORMATION, b"".join(user))
    )
    return HEADER.pack(A_ASSOCIATE_AC, len(body)) + body
