"""Well-formed association streams built by hand, PDU by PDU, so that a test or the network
fuzzer can spoil exactly one field: A-ASSOCIATE-RQ, C-ECHO and C-STORE messages in P-DATA-TF
PDUs, A-RELEASE-RQ, A-ABORT."""

import struct
from dataclasses import dataclass

APPLICATION_CONTEXT = b"1.2.840.10008.3.1.1.1"
VERIFICATION = b"1.2.840.10008.1.1"
CT_IMAGE_STORAGE = b"1.2.840.10008.5.1.4.1.1.2"
IMPLICIT_VR_LE = b"1.2.840.10008.1.2"
EXPLICIT_VR_LE = b"1.2.840.10008.1.2.1"
# Contexts of the standard request: 1 Verification, 3 CT Image Storage.
ECHO_CONTEXT, STORE_CONTEXT = 1, 3


def item(item_type: int, value: bytes) -> bytes:
    return struct.pack(">BxH", item_type, len(value)) + value


def presentation_context(context_id: int, abstract: bytes, *syntaxes: bytes) -> bytes:
    return item(
        0x20,
        bytes((context_id, 0, 0, 0))
        + item(0x30, abstract)
        + b"".join(item(0x40, ts) for ts in syntaxes),
    )


def associate_rq(
    called: bytes = b"INGEST",
    calling: bytes = b"FUZZER",
    contexts: bytes | None = None,
    max_length: int = 16384,
    implementation_class_uid: bytes = b"1.2.3.4",
) -> bytes:
    if contexts is None:
        contexts = presentation_context(
            ECHO_CONTEXT, VERIFICATION, IMPLICIT_VR_LE
        ) + presentation_context(STORE_CONTEXT, CT_IMAGE_STORAGE, EXPLICIT_VR_LE, IMPLICIT_VR_LE)
    body = (
        struct.pack(">Hxx16s16s32x", 1, called.ljust(16), calling.ljust(16))
        + item(0x10, APPLICATION_CONTEXT)
        + contexts
        + item(
            0x50, item(0x51, struct.pack(">I", max_length)) + item(0x52, implementation_class_uid)
        )
    )
    return struct.pack(">BxI", 0x01, len(body)) + body


def element(tag_element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, tag_element, len(value)) + value


def command_set(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return element(0x0000, struct.pack("<I", len(body))) + body


def _uid(value: bytes) -> bytes:
    return value + b"\0" if len(value) % 2 else value


def c_echo_rq(message_id: int = 1) -> bytes:
    return command_set(
        element(0x0002, _uid(VERIFICATION)),
        element(0x0100, struct.pack("<H", 0x0030)),
        element(0x0110, struct.pack("<H", message_id)),
        element(0x0800, struct.pack("<H", 0x0101)),
    )


def c_store_rq(
    sop_instance_uid: bytes, message_id: int = 1, sop_class_uid: bytes = CT_IMAGE_STORAGE
) -> bytes:
    return command_set(
        element(0x0002, _uid(sop_class_uid)),
        element(0x0100, struct.pack("<H", 0x0001)),
        element(0x0110, struct.pack("<H", message_id)),
        element(0x0700, struct.pack("<H", 0)),
        element(0x0800, struct.pack("<H", 0x0000)),
        element(0x1000, _uid(sop_instance_uid)),
    )


def data_set(sop_instance_uid: bytes, size: int = 64) -> bytes:
    """An Explicit VR Little Endian data set: SOP Class, SOP Instance UID, some padding bytes."""
    uid = _uid(sop_instance_uid)
    padding = b"\0" * (size + size % 2)
    return (
        struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", len(_uid(CT_IMAGE_STORAGE)))
        + _uid(CT_IMAGE_STORAGE)
        + struct.pack("<HH2sH", 0x0008, 0x0018, b"UI", len(uid))
        + uid
        + struct.pack("<HH2sxxI", 0x0009, 0x0010, b"OB", len(padding))
        + padding
    )


def p_data(context_id: int, control: int, fragment: bytes) -> bytes:
    pdv = struct.pack(">IBB", len(fragment) + 2, context_id, control) + fragment
    return struct.pack(">BxI", 0x04, len(pdv)) + pdv


def message(context_id: int, command: bytes, dataset: bytes | None, fragment: int) -> list[bytes]:
    """The P-DATA-TF PDUs of one message: the command in one PDV, the data set in fragments."""
    pdus = [p_data(context_id, 0x03, command)]
    if dataset is not None:
        for start in range(0, len(dataset), fragment):
            last = 0x02 if start + fragment >= len(dataset) else 0x00
            pdus.append(p_data(context_id, last, dataset[start : start + fragment]))
    return pdus


A_RELEASE_RQ = struct.pack(">BxIxxxx", 0x05, 4)
A_ABORT = struct.pack(">BxIxxBB", 0x07, 4, 0, 0)


@dataclass(frozen=True)
class Store:
    """One C-STORE in a stream, and where its PDUs are."""

    sop_instance_uid: str
    first_pdu: int  # index of its command PDU
    last_pdu: int  # index of its last data set PDU


def session(uids: list[bytes], *, size: int = 64, fragment: int = 4096, echo: bool = True):
    """The PDUs of a whole association: RQ, an optional C-ECHO, one C-STORE per UID, release;
    and where each store is."""
    pdus = [associate_rq()]
    if echo:
        pdus += message(ECHO_CONTEXT, c_echo_rq(), None, fragment)
    stores = []
    for index, uid in enumerate(uids, start=2):
        first = len(pdus)
        pdus += message(STORE_CONTEXT, c_store_rq(uid, index), data_set(uid, size), fragment)
        stores.append(Store(uid.decode("ascii", "replace"), first, len(pdus) - 1))
    pdus.append(A_RELEASE_RQ)
    return pdus, stores
