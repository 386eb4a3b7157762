"""Hand-built data set bytes for the header tests: elements, items and sequences encoded in each
transfer syntax pydicom reads, lying lengths included, so a test can say exactly what it sends."""

import struct
import zlib

from pacs_ingest.shared import part10

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
BIG = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
SYNTAXES = {"explicit": EXPLICIT, "implicit": IMPLICIT, "big": BIG, "deflated": DEFLATED}
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


class Encoder:
    """Encodes for one transfer syntax: `syntax` is a key of SYNTAXES."""

    def __init__(self, syntax: str = "explicit") -> None:
        self.syntax = syntax
        self.implicit = syntax == "implicit"
        self.order = ">" if syntax == "big" else "<"

    def element(self, tag: int, vr: str, value: bytes, *, length: int | None = None) -> bytes:
        """One element; `length` overrides the declared length (to lie about it)."""
        if len(value) % 2:
            value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
        declared = len(value) if length is None else length
        group, element = tag >> 16, tag & 0xFFFF
        if self.implicit:
            return struct.pack(self.order + "HHL", group, element, declared) + value
        if vr in _LONG_VRS:
            head = struct.pack(self.order + "HH2sHL", group, element, vr.encode(), 0, declared)
            return head + value
        return struct.pack(self.order + "HH2sH", group, element, vr.encode(), declared) + value

    def text(self, tag: int, vr: str, value: str) -> bytes:
        return self.element(tag, vr, value.encode("latin-1"))

    def item(self, content: bytes, *, undefined: bool = False) -> bytes:
        if undefined:
            return self._marker(0xE000, UNDEFINED) + content + self._marker(0xE00D, 0)
        return self._marker(0xE000, len(content)) + content

    def sequence(self, tag: int, items: list[bytes], *, undefined: bool = False) -> bytes:
        body = b"".join(items)
        if undefined:
            return self.element(tag, "SQ", b"", length=UNDEFINED) + body + self._marker(0xE0DD, 0)
        return self.element(tag, "SQ", body)

    def nested(self, tag: int, depth: int, innermost: bytes = b"") -> bytes:
        """`depth` undefined-length sequences, each the only element of its parent's one item;
        built without recursion."""
        opening = self.element(tag, "SQ", b"", length=UNDEFINED) + self._marker(0xE000, UNDEFINED)
        closing = self._marker(0xE00D, 0) + self._marker(0xE0DD, 0)
        return opening * depth + innermost + closing * depth

    def _marker(self, element: int, length: int) -> bytes:
        return struct.pack(self.order + "HHL", 0xFFFE, element, length)

    def part10(self, data_set: bytes, *, sop_instance_uid: str = "1.2.3.4") -> bytes:
        """A Part 10 file: our file meta, then `data_set` (deflated for the deflated syntax)."""
        if self.syntax == "deflated":
            deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            data_set = deflater.compress(data_set) + deflater.flush()
        return file_meta(SYNTAXES[self.syntax], sop_instance_uid) + data_set


def file_meta(transfer_syntax: str, sop_instance_uid: str = "1.2.3.4") -> bytes:
    return part10.encode_header(
        sop_class_uid=CT_IMAGE_STORAGE,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=transfer_syntax,
        implementation_class_uid="1.2.826.0.1.3680043.9.3811.3.0.4",
        implementation_version_name="TESTS",
        source_ae_title="TESTS",
    )
