"""Read just enough of a spooled object to file it, and refuse what cannot be read that far.

The data set is walked (workers.element_scan) up to the last top-level tag filing needs: the
pattern's attributes, the Specific Character Set that decodes them and the SOP Instance UID that
every object must have. Every length before that point is checked and no limit of Python's or
of memory can be reached, whatever the object declares; a malformed object raises HeaderError
with the element at fault, so it goes to failed/ instead of being filed at a path made of missing
values. What the pattern reads is handed to pydicom as raw elements, exactly as pydicom's own
reader would have produced them, so rendering is unchanged for every readable object.

Transfer syntaxes are read as pydicom reads them: Implicit VR Little Endian, Explicit VR Big
Endian, the deflated ones (inflated as they are read, never whole; pydicom knows only Deflated
Explicit VR Little Endian), and Explicit VR Little Endian for every other one.
"""

import struct
from collections.abc import Iterable
from typing import BinaryIO

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPIPHTJ2KReferencedDeflate,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from pacs_ingest.shared.pattern import SPECIFIC_CHARACTER_SET, Item, string_value
from pacs_ingest.workers.byte_window import ByteWindow, FileSource, InflatedSource
from pacs_ingest.workers.element_scan import MAX_VALUE_BYTES, Needs, Scanned, Scanner, tag_text
from pacs_ingest.workers.header_errors import HeaderError, NoSOPInstanceUID

__all__ = ["HeaderError", "NoSOPInstanceUID", "read_filing_header", "read_header"]

SOP_INSTANCE_UID = 0x00080018
PIXEL_DATA = 0x7FE00010
_TRANSFER_SYNTAX_UID = 0x0010  # in group 0002
JPIP_REFERENCED_DEFLATE = "1.2.840.10008.1.2.4.95"  # not among pydicom's names
# The syntaxes whose data set is deflated (PS3.5 A.5, A.7); pydicom inflates only the first.
_DEFLATED = frozenset(
    [DeflatedExplicitVRLittleEndian, JPIP_REFERENCED_DEFLATE, JPIPHTJ2KReferencedDeflate]
)
_PREFIX = 128 + 4  # preamble and "DICM"
_META_HEADER = struct.Struct("<HH2sH")
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


def read_filing_header(fp: BinaryIO, tag_paths: Iterable[tuple[int, ...]]) -> Dataset:
    """The header filing needs: what `tag_paths` read, and a SOP Instance UID.

    Raises HeaderError if the data set cannot be read that far, NoSOPInstanceUID if it has
    none (or an empty one): with or without a pattern, such an object is not filed.
    """
    scanned = _scan(fp, (*tag_paths, (SOP_INSTANCE_UID,)))
    header = _dataset(scanned)
    if string_value(Item.top(header), SOP_INSTANCE_UID, 0) is None:
        raise NoSOPInstanceUID(_no_sop_instance_uid(scanned))
    return header


def read_header(fp: BinaryIO, tag_paths: Iterable[tuple[int, ...]]) -> Dataset:
    """The top-level elements the tag paths start with (and the Specific Character Set) of the
    Part 10 file `fp`, read from its start; tags from Pixel Data on are never read.

    A tag path is a sequence of tags, each but the last a sequence whose first item the next
    one is in (shared.pattern's placeholders). Raises HeaderError.
    """
    return _dataset(_scan(fp, tag_paths))


def _scan(fp: BinaryIO, tag_paths: Iterable[tuple[int, ...]]) -> Scanned:
    fp.seek(0)
    window = ByteWindow(FileSource(fp))
    syntax = _transfer_syntax(window)
    if syntax in _DEFLATED:
        fp.seek(window.pos)
        window = ByteWindow(InflatedSource(fp))
    needs = _needs(tag_paths)
    little = syntax != ExplicitVRBigEndian
    scanner = Scanner(window, little=little, needs=needs, stop=min(max(needs), PIXEL_DATA - 1))
    return scanner.scan(implicit=syntax == ImplicitVRLittleEndian)


def _no_sop_instance_uid(scanned: Scanned) -> str:
    if BaseTag(SOP_INSTANCE_UID) in scanned.elements:
        return "the SOP Instance UID (0008,0018) of the data set is empty"
    if scanned.stopped_at is None:
        return "the data set ends without a SOP Instance UID (0008,0018)"
    return (
        "the data set has no SOP Instance UID (0008,0018): reading stopped at "
        f"{tag_text(scanned.stopped_at)}"
    )


def _needs(tag_paths: Iterable[tuple[int, ...]]) -> Needs:
    needs: Needs = {SPECIFIC_CHARACTER_SET: {}}
    for path in tag_paths:
        level = needs
        for tag in path:
            level = level.setdefault(tag, {})
    return needs


def _transfer_syntax(window: ByteWindow) -> str:
    """The Transfer Syntax UID of the file meta group, leaving `window` after the group.

    As pydicom does, the group is every element of group 0002 that follows "DICM", whatever its
    group length says.
    """
    prefix = window.take(_PREFIX)
    if len(prefix) < _PREFIX or prefix[128:] != b"DICM":
        raise HeaderError("not a DICOM Part 10 file: no DICM after the 128-byte preamble")
    syntax = b""
    while window.peek(2) == b"\x02\x00":
        element, value = _meta_element(window)
        if element == _TRANSFER_SYNTAX_UID:
            syntax = value
    text = syntax.decode("ascii", "replace").rstrip("\x00 ")
    if not text:
        raise HeaderError("the file meta has no Transfer Syntax UID (0002,0010)")
    return text


def _meta_element(window: ByteWindow) -> tuple[int, bytes]:
    """(element number, value) of the file meta element at the window (Explicit VR LE)."""
    head = window.take(8)
    if len(head) < 8:
        raise HeaderError("the file meta ends inside an element header")
    _, element, vr, length = _META_HEADER.unpack(head)
    if vr.decode("latin-1") in _LONG_VRS:
        extra = window.take(4)
        if len(extra) < 4:
            raise HeaderError("the file meta ends inside an element header")
        (length,) = struct.unpack("<L", extra)
    if length > MAX_VALUE_BYTES:
        raise HeaderError(f"file meta element (0002,{element:04X}) declares {length} bytes")
    value = window.take(length)
    if len(value) < length:
        raise HeaderError(
            f"file meta element (0002,{element:04X}) declares {length} bytes, {len(value)} remain"
        )
    return element, value


def _dataset(scanned: Scanned) -> Dataset:
    """The found elements as pydicom's reader would have returned them (read_dataset)."""
    elements = scanned.elements
    encoding: str | list[str] = default_encoding
    charset_tag = BaseTag(SPECIFIC_CHARACTER_SET)
    charset = elements.get(charset_tag)
    if charset is not None:
        try:
            converted = convert_raw_data_element(charset)
            encoding = convert_encodings(converted.value)
        except (ValueError, LookupError) as exc:
            raise HeaderError(
                f"Specific Character Set {tag_text(SPECIFIC_CHARACTER_SET)}: {exc}"
            ) from None
        # Kept converted, as the data set would convert it on first use: rendering reads it.
        elements[charset_tag] = converted
    dataset = Dataset(elements)
    dataset.set_original_encoding(scanned.implicit, scanned.little, encoding)
    return dataset
