"""The DICOM Part 10 file header: 128-byte preamble, "DICM" and the File Meta group (0002).

Spool and archive files are this header followed by the data set bytes exactly as received. We
encode the group ourselves rather than through pydicom because it is seven fixed elements, and the
receive path should not build a Dataset per object.
"""

import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import BinaryIO

PREAMBLE = b"\x00" * 128 + b"DICM"
_FILE_META_VERSION = b"\x00\x01"
# Explicit VR Little Endian: VRs whose length field is 4 bytes, after 2 reserved bytes.
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT"}


class FileMetaError(ValueError):
    """Raised when a file does not start with a readable Part 10 header."""


@dataclass(frozen=True, slots=True)
class FileMeta:
    """The facts of group 0002 that filing needs, and where the data set starts."""

    media_storage_sop_class_uid: str
    media_storage_sop_instance_uid: str
    transfer_syntax_uid: str
    implementation_class_uid: str
    implementation_version_name: str
    source_application_entity_title: str
    dataset_offset: int


def _element(group_element: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    tag = struct.pack("<HH", 0x0002, group_element)
    if vr in _LONG_VRS:
        return tag + vr + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def encode_header(
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
    source_ae_title: str,
) -> bytes:
    """Preamble, "DICM" and group 0002 as dcm4che's storescp writes them.

    The implementation UID and version name are the *peer's*, from its A-ASSOCIATE-RQ, and the
    Source AE Title is its Calling AE title (reference §4 step 5). Empty optional values are left
    out rather than written empty.
    """
    body = b"".join(
        [
            _leading(sop_class_uid),
            _element(0x0003, b"UI", sop_instance_uid.encode("ascii"), b"\x00"),
            _trailing(
                transfer_syntax_uid,
                implementation_class_uid,
                implementation_version_name,
                source_ae_title,
            ),
        ]
    )
    group_length = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<HI", 4, len(body))
    return PREAMBLE + group_length + body


# A receiver writes a file meta per object, and all but the SOP Instance UID repeat within an
# association: those elements are encoded once.
@lru_cache(maxsize=256)
def _leading(sop_class_uid: str) -> bytes:
    return _element(0x0001, b"OB", _FILE_META_VERSION, b"\x00") + _element(
        0x0002, b"UI", sop_class_uid.encode("ascii"), b"\x00"
    )


@lru_cache(maxsize=256)
def _trailing(
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str,
    source_ae_title: str,
) -> bytes:
    return b"".join(
        [
            _element(0x0010, b"UI", transfer_syntax_uid.encode("ascii"), b"\x00"),
            _element(0x0012, b"UI", implementation_class_uid.encode("ascii"), b"\x00"),
            *(
                [_element(0x0013, b"SH", implementation_version_name.encode("ascii"), b" ")]
                if implementation_version_name
                else []
            ),
            *(
                [_element(0x0016, b"AE", source_ae_title.encode("ascii"), b" ")]
                if source_ae_title
                else []
            ),
        ]
    )


def dataset_offset(head: bytes) -> int:
    """Where the data set starts in a file whose header begins with `head`.

    Relies on the group length (0002,0000), which every writer we accept puts first; `head` must
    hold at least the first 144 bytes.
    """
    if len(head) < 144 or head[128:132] != b"DICM":
        raise FileMetaError("no DICM prefix after the 128-byte preamble")
    if head[132:138] != b"\x02\x00\x00\x00UL":
        raise FileMetaError("file meta does not start with its group length (0002,0000)")
    (group_length,) = struct.unpack_from("<I", head, 140)
    return 144 + group_length


def is_part10_file(path: str | os.PathLike[str]) -> bool:
    """True if the file starts like a Part 10 file; OSError if it cannot be read."""
    with open(path, "rb") as fp:
        head = fp.read(144)
    try:
        dataset_offset(head)
    except FileMetaError:
        return False
    return True


def read_file_meta(fp: BinaryIO) -> FileMeta:
    """Parse the header of an open Part 10 file, leaving `fp` at the start of the data set."""
    head = fp.read(144)
    start = dataset_offset(head)
    return parse_file_meta(head + fp.read(start - 144))


def parse_file_meta(header: bytes) -> FileMeta:
    """Parse a whole header: preamble, "DICM" and the complete group 0002."""
    start = dataset_offset(header[:144])
    if len(header) < start:
        raise FileMetaError("file meta group is truncated")
    meta = header[144:start]
    values: dict[int, bytes] = {}
    pos = 0
    while pos < len(meta):
        if pos + 8 > len(meta):
            raise FileMetaError("file meta group is truncated")
        group, element = struct.unpack_from("<HH", meta, pos)
        vr = meta[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            (length,) = struct.unpack_from("<I", meta, pos + 8)
            pos += 12
        else:
            (length,) = struct.unpack_from("<H", meta, pos + 6)
            pos += 8
        if group != 0x0002 or pos + length > len(meta):
            raise FileMetaError(f"malformed file meta element ({group:04X},{element:04X})")
        values[element] = meta[pos : pos + length]
        pos += length

    def text(element: int) -> str:
        return values.get(element, b"").decode("ascii", "replace").rstrip("\x00 ")

    if not text(0x0010):
        raise FileMetaError("file meta has no Transfer Syntax UID (0002,0010)")
    return FileMeta(
        media_storage_sop_class_uid=text(0x0002),
        media_storage_sop_instance_uid=text(0x0003),
        transfer_syntax_uid=text(0x0010),
        implementation_class_uid=text(0x0012),
        implementation_version_name=text(0x0013),
        source_application_entity_title=text(0x0016),
        dataset_offset=start,
    )
