"""Walk a data set's element stream without recursion, up to the last top-level tag filing needs.

Everything before that tag is checked, however the object is built: every declared length
against the bytes left in its item and in the file, sequences at most `MAX_DEPTH` deep, at most
`MAX_ELEMENTS` elements and items, and no value read that is larger than `MAX_VALUE_BYTES`. A
breach raises a HeaderError naming the element; nothing here recurses or grows with the object.

What is kept is what the pattern reads: the wanted top-level elements as pydicom's raw elements
(binary values over `BULK_READ_LIMIT` bytes are not read, and count as missing, as dcm4che does
not load bulk data), and for a sequence on a tag path the bytes of its first item, which pydicom
parses when rendering goes into it. Its nested sequences were scanned here first, so that parse
is bounded too. The element stream is read as pydicom reads it (pydicom/filereader.py): an item
or data set whose first element has no valid VR is implicit VR, an element with a VR that is no
pair of capitals is implicit VR on its own, and an undefined length is a sequence for UN, for
tags the dictionary calls SQ, and for unknown tags whose value starts with an item.
"""

import struct
from dataclasses import dataclass
from typing import NoReturn

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.filereader import ENCODED_VR
from pydicom.tag import BaseTag
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from pacs_ingest.shared.pattern import BULK_VRS, resolved_vr
from pacs_ingest.workers.byte_window import ByteWindow
from pacs_ingest.workers.header_errors import HeaderError

MAX_DEPTH = 64
MAX_ELEMENTS = 1_000_000
MAX_VALUE_BYTES = 1 << 20
BULK_READ_LIMIT = 1024

ITEM = 0xFFFEE000
ITEM_DELIMITATION = 0xFFFEE00D
SEQUENCE_DELIMITATION = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
_TOP = -1  # the tag of the top-level data set's frame
_VR_NAMES = {encoded: encoded.decode("latin-1") for encoded in ENCODED_VR}
_LONG_VRS = frozenset(str(vr).encode("latin-1") for vr in EXPLICIT_VR_LENGTH_32)
_LONG = {encoded: encoded in _LONG_VRS for encoded in ENCODED_VR}  # VR -> 4-byte length?

Needs = dict[int, "Needs"]
"""Tag -> what is needed inside its first item; {} for an attribute read for its value."""


def tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


@dataclass(slots=True)
class _Frame:
    """A sequence (its items follow) or a data set (the top, or one item) being walked."""

    sequence: bool
    tag: int  # the sequence's tag, for it and for its items; _TOP for the top level
    limit: int | None  # where it, or the nearest enclosing defined length, ends
    implicit: bool
    needs: Needs | None  # None: only its structure matters
    item: int = 0  # a sequence: items begun so far; an item: its number
    capture: bool = False  # a top-level sequence whose first item the pattern reads
    end: int | None = None  # its own defined end, None when delimited


@dataclass(frozen=True, slots=True)
class Scanned:
    elements: dict[BaseTag, RawDataElement]
    implicit: bool  # how the top-level data set turned out to be encoded
    little: bool
    stopped_at: int | None  # the first top-level tag not read; None: the data set ended


class Scanner:
    """One walk over one data set; `scan` may be called once."""

    def __init__(self, window: ByteWindow, *, little: bool, needs: Needs, stop: int) -> None:
        self._window = window
        self._little = little
        self._needs = needs
        self._stop = stop
        order = "<" if little else ">"
        self._implicit_header = struct.Struct(order + "HHL")
        self._explicit_header = struct.Struct(order + "HH2sH")
        self._long_length = struct.Struct(order + "L")
        self._item_bytes = struct.pack(order + "HH", ITEM >> 16, ITEM & 0xFFFF)
        self._stack: list[_Frame] = []
        self._depth = 0
        self._count = 0
        self._capture_limit: int | None = None  # while a first item is pinned: its largest end
        self._found: dict[BaseTag, RawDataElement] = {}
        self._stopped_at: int | None = None

    def scan(self, implicit: bool) -> Scanned:
        """The wanted elements of a data set starting at the window's position.

        `implicit` is what the transfer syntax says; the first element may overrule it.
        """
        top = _Frame(False, _TOP, None, self._looks_implicit(implicit, in_item=False), self._needs)
        self._stack.append(top)
        while self._stack:
            frame = self._stack[-1]
            if frame.sequence:
                self._next_item(frame)
            else:
                self._next_element(frame)
        return Scanned(self._found, top.implicit, self._little, self._stopped_at)

    # -- data sets -------------------------------------------------------------------------

    def _looks_implicit(self, assumed: bool, *, in_item: bool) -> bool:
        if in_item and assumed:
            return True  # items do not switch from implicit to explicit VR
        head = self._window.peek(6)
        if len(head) < 6:
            return assumed
        return not (0x40 < head[4] < 0x5B and 0x40 < head[5] < 0x5B)

    def _next_element(self, frame: _Frame) -> None:
        self._skip_run(frame)
        window = self._window
        if frame.end is not None and window.pos >= frame.end:
            self._end_item(frame)
            return
        head = window.take(8)
        if len(head) < 8:
            self._ended(frame, head)
            return
        tag, vr, length = self._element_header(frame, head)
        self._count_element()
        if frame.limit is not None and window.pos > frame.limit:
            raise HeaderError(f"the header of {tag_text(tag)}{self._in(frame)} runs past its end")
        if frame.tag == _TOP:
            if tag > self._stop:
                self._stack.clear()  # past the last tag filing needs: the rest is not read
                self._stopped_at = tag
                return
        elif tag == ITEM_DELIMITATION:
            self._delimited_item(frame)
            return
        elif tag in (ITEM, SEQUENCE_DELIMITATION):
            raise HeaderError(f"{tag_text(tag)} stands where an element belongs{self._in(frame)}")
        if length == UNDEFINED_LENGTH:
            self._undefined(frame, tag, vr)
        else:
            self._defined(frame, tag, vr, length)

    def _skip_run(self, frame: _Frame) -> None:
        """Walk, in place in the buffer, the elements ahead that lie wholly in it and are plain
        (a known VR, a defined length, no item or delimiter, not past the stop): skip those
        nothing needs, and keep the top-level attributes of explicit short VRs (no sequence,
        no bulk data) that the pattern reads. The bulk of a header, with the checks and results
        _next_element has for such elements, at a fraction of its cost; the first element that
        is not plain is left to _next_element."""
        data, index = self._window.buffered()
        base = self._window.pos - index  # position of data[0]
        # No plain element may end past this: the buffer, the frame (an item's own end is its
        # limit) and a pinned first item.
        end = len(data) if frame.limit is None else min(len(data), frame.limit - base)
        if self._capture_limit is not None:
            end = min(end, self._capture_limit - base)
        walk = self._walk_implicit if frame.implicit else self._walk_explicit
        self._window.advance(walk(data, index, end, frame.needs or {}, top=frame.tag == _TOP))

    def _last_plain_tag(self, *, top: bool) -> int:
        return self._stop if top else ITEM - 1

    def _walk_implicit(self, data: bytes, index: int, end: int, needs: Needs, *, top: bool) -> int:
        header, count, most = self._implicit_header.unpack_from, self._count, MAX_ELEMENTS
        last_tag = self._last_plain_tag(top=top)
        while index + 8 <= end:
            group, element, length = header(data, index)
            tag = group << 16 | element
            after = index + 8 + length
            if tag > last_tag or tag in needs or length == UNDEFINED_LENGTH or after > end:
                break
            count += 1
            if count > most:
                self._too_many()
            index = after
        self._count = count
        return index

    def _walk_explicit(self, data: bytes, index: int, end: int, needs: Needs, *, top: bool) -> int:
        header, long_length = self._explicit_header.unpack_from, self._long_length.unpack_from
        count = self._count
        last_tag = self._last_plain_tag(top=top)
        base = self._window.pos - index  # position of data[0]
        # The loop is the bulk of a worker's header read (~125 elements an object): one lookup
        # per element for the VR, and the element count checked once, after the loop (the
        # buffer bounds how far past MAX_ELEMENTS the walk can go).
        while index + 12 <= end:
            group, element, vr, length = header(data, index)
            tag = group << 16 | element
            long = _LONG.get(vr)  # None: no valid VR
            if tag > last_tag or long is None:
                break
            after = index + 8
            wanted = tag in needs
            if long:
                if wanted:
                    break  # a sequence or bulk data the pattern reads
                (length,) = long_length(data, after)
                after += 4
                if length == UNDEFINED_LENGTH:
                    break
            elif wanted and not top:
                break  # an attribute inside an item
            if after + length > end:
                break
            count += 1
            if wanted:
                self._found[BaseTag(tag)] = RawDataElement(
                    BaseTag(tag), _VR_NAMES[vr], length, data[after : after + length],
                    base + after, False, self._little,
                )  # fmt: skip
            index = after + length
        self._count = count
        if count > MAX_ELEMENTS:
            self._too_many()
        return index

    def _ended(self, frame: _Frame, head: bytes) -> None:
        """The bytes ran out where an element header belongs: the end, or a truncation."""
        if head or frame.tag != _TOP:
            raise HeaderError(f"the data set ends inside an element header{self._in(frame)}")
        self._stack.pop()

    def _element_header(self, frame: _Frame, head: bytes) -> tuple[int, str | None, int]:
        if frame.implicit:
            group, element, length = self._implicit_header.unpack(head)
            return group << 16 | element, None, length
        group, element, vr_bytes, length = self._explicit_header.unpack(head)
        tag = group << 16 | element
        vr = _VR_NAMES.get(vr_bytes)
        if vr is not None:
            if vr_bytes in _LONG_VRS:
                extra = self._window.take(4)
                if len(extra) < 4:
                    raise HeaderError(f"the data set ends inside the header of {tag_text(tag)}")
                (length,) = self._long_length.unpack(extra)
            return tag, vr, length
        if not b"AA" <= vr_bytes <= b"ZZ":
            _, _, length = self._implicit_header.unpack(head)  # this element is implicit VR
            return tag, None, length
        return tag, vr_bytes.decode("latin-1"), length  # an unknown VR: 2-byte length

    def _defined(self, frame: _Frame, tag: int, vr: str | None, length: int) -> None:
        room = self._window.room(frame.limit)
        if room is not None and length > room:
            raise HeaderError(self._declares(frame, tag, length, room))
        wanted = None if frame.needs is None else frame.needs.get(tag)
        if wanted is None:
            self._skip(frame, tag, length)
        elif wanted and self._is_sequence(tag, vr, length):
            self._enter_sequence(frame, tag, vr, self._window.pos + length, wanted)
        elif frame.tag == _TOP:
            self._keep_value(frame, tag, vr, length)
        else:
            self._skip(frame, tag, length)

    def _is_sequence(self, tag: int, vr: str | None, length: int) -> bool:
        """Whether a defined-length element on a tag path is a sequence to go into."""
        if length == 0:
            return False  # no items: the path renders null, as for an absent sequence
        kind = resolved_vr(tag, vr)
        # An unknown private tag may be a sequence pydicom knows: it decides once it has items.
        return kind == "SQ" or (kind == "UN" and self._window.peek(4) == self._item_bytes)

    def _keep_value(self, frame: _Frame, tag: int, vr: str | None, length: int) -> None:
        kind = resolved_vr(tag, vr)
        if kind == "SQ" or (length > BULK_READ_LIMIT and kind in BULK_VRS):
            self._found.pop(BaseTag(tag), None)  # not read: it counts as missing
            self._skip(frame, tag, length)
            return
        if length > MAX_VALUE_BYTES:
            raise HeaderError(
                f"element {tag_text(tag)} holds {length} bytes, more than the "
                f"{MAX_VALUE_BYTES} a path may be rendered from"
            )
        value_tell = self._window.pos
        value = self._window.take(length)
        if len(value) < length:
            raise HeaderError(self._declares(frame, tag, length, len(value)))
        self._found[BaseTag(tag)] = RawDataElement(
            BaseTag(tag), vr, length, value, value_tell, frame.implicit, self._little
        )

    def _undefined(self, frame: _Frame, tag: int, vr: str | None) -> None:
        if not self._undefined_is_sequence(tag, vr):
            self._skip_fragments(frame, tag)  # encapsulated data: it counts as missing
            return
        wanted = None if frame.needs is None else frame.needs.get(tag)
        self._enter_sequence(frame, tag, "SQ", None, wanted or None)

    def _undefined_is_sequence(self, tag: int, vr: str | None) -> bool:
        if vr in ("SQ", "UN"):
            return True
        if vr is not None:
            return False
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:
            return self._window.peek(4) == self._item_bytes

    def _skip_fragments(self, frame: _Frame, tag: int) -> None:
        """Skip an undefined-length value that is no sequence: items, then a delimiter."""
        while True:
            fragment, length = self._item_header(f"element {tag_text(tag)}")
            if fragment == SEQUENCE_DELIMITATION:
                return
            if fragment != ITEM or length == UNDEFINED_LENGTH:
                raise HeaderError(
                    f"element {tag_text(tag)} of undefined length holds {tag_text(fragment)} "
                    "where an item of defined length belongs"
                )
            room = self._window.room(frame.limit)
            if room is not None and length > room:
                raise HeaderError(self._declares(frame, tag, length, room))
            self._skip(frame, tag, length)

    def _delimited_item(self, frame: _Frame) -> None:
        if frame.end is not None and self._window.pos != frame.end:
            raise HeaderError(
                f"an item delimitation (FFFE,E00D) ends item {frame.item} of "
                f"{tag_text(frame.tag)} before its defined length"
            )
        self._end_item(frame)

    def _end_item(self, frame: _Frame) -> None:
        self._stack.pop()
        sequence = self._stack[-1]
        if sequence.capture and frame.item == 1:
            self._captured(sequence)

    # -- sequences -------------------------------------------------------------------------

    def _enter_sequence(
        self, frame: _Frame, tag: int, vr: str | None, end: int | None, wanted: Needs | None
    ) -> None:
        if self._depth >= MAX_DEPTH:
            raise HeaderError(f"sequences nested deeper than {MAX_DEPTH} (at {tag_text(tag)})")
        self._depth += 1
        capture = bool(wanted) and frame.tag == _TOP
        limit = frame.limit if end is None else end  # a defined end was checked against it
        sequence = _Frame(True, tag, limit, frame.implicit, wanted, capture=capture, end=end)
        self._stack.append(sequence)
        if capture:  # an empty value until its first item is read
            self._found[BaseTag(tag)] = RawDataElement(
                BaseTag(tag), vr, 0, b"", self._window.pos, frame.implicit, self._little
            )

    def _next_item(self, frame: _Frame) -> None:
        window = self._window
        if frame.end is not None and window.pos >= frame.end:
            self._end_sequence()
            return
        start = window.pos
        tag, length = self._item_header(f"sequence {tag_text(frame.tag)}")
        if tag == SEQUENCE_DELIMITATION:
            self._delimited_sequence(frame)
        elif tag != ITEM:
            raise HeaderError(
                f"sequence {tag_text(frame.tag)} holds {tag_text(tag)} where an item belongs"
            )
        elif frame.limit is not None and window.pos > frame.limit:
            raise HeaderError(f"item {frame.item + 1} of {tag_text(frame.tag)} runs past its end")
        else:
            self._enter_item(frame, start, length)

    def _enter_item(self, frame: _Frame, start: int, length: int) -> None:
        frame.item += 1
        end = None
        if length != UNDEFINED_LENGTH:
            room = self._window.room(frame.limit)
            if room is not None and length > room:
                raise HeaderError(
                    f"item {frame.item} of {tag_text(frame.tag)} declares {length} bytes, "
                    f"{room} remain"
                )
            end = self._window.pos + length
        first_captured = frame.capture and frame.item == 1
        if first_captured:
            self._window.pin(start)
            self._capture_limit = start + MAX_VALUE_BYTES
        needs = frame.needs if first_captured or not frame.capture else None
        implicit = self._looks_implicit(frame.implicit, in_item=True)
        limit = frame.limit if end is None else end
        self._stack.append(
            _Frame(False, frame.tag, limit, implicit, needs, item=frame.item, end=end)
        )

    def _delimited_sequence(self, frame: _Frame) -> None:
        if frame.end is not None and self._window.pos != frame.end:
            raise HeaderError(
                f"a sequence delimitation (FFFE,E0DD) ends {tag_text(frame.tag)} before "
                "its defined length"
            )
        self._end_sequence()

    def _end_sequence(self) -> None:
        self._stack.pop()
        self._depth -= 1

    def _captured(self, sequence: _Frame) -> None:
        """The first item of a top-level sequence on a tag path is read: keep it, skip the rest."""
        value = self._window.unpin()
        self._capture_limit = None
        tag = BaseTag(sequence.tag)
        empty = self._found[tag]
        self._found[tag] = RawDataElement(
            tag, empty.VR, len(value), value, empty.value_tell, empty.is_implicit_VR, self._little
        )
        sequence.capture = False
        sequence.needs = None
        if sequence.end is not None:
            self._skip(sequence, sequence.tag, sequence.end - self._window.pos)

    # -- limits ----------------------------------------------------------------------------

    def _skip(self, frame: _Frame, tag: int, length: int) -> None:
        window = self._window
        if self._capture_limit is not None and window.pos + length > self._capture_limit:
            raise HeaderError(
                f"the first item of {tag_text(self._stack[1].tag)} holds more than "
                f"{MAX_VALUE_BYTES} bytes, more than a path may be rendered from"
            )
        skipped = window.skip(length)
        if skipped < length:
            raise HeaderError(self._declares(frame, tag, length, skipped))

    def _item_header(self, inside: str) -> tuple[int, int]:
        """Tag and length of the item or delimitation header next in the window (implicit VR
        whatever the transfer syntax, PS3.5 7.5); HeaderError if the data set ends `inside`."""
        head = self._window.take(8)
        if len(head) < 8:
            raise HeaderError(f"the data set ends inside {inside}")
        self._count_element()
        group, element, length = self._implicit_header.unpack(head)
        return group << 16 | element, length

    def _count_element(self) -> None:
        """Count one more element or item header; HeaderError past MAX_ELEMENTS (a bound on
        the work a hostile header can cause)."""
        self._count += 1
        if self._count > MAX_ELEMENTS:
            self._too_many()

    def _too_many(self) -> NoReturn:
        raise HeaderError(
            f"more than {MAX_ELEMENTS} elements and items before {tag_text(self._stop)}"
        )

    def _declares(self, frame: _Frame, tag: int, length: int, room: int) -> str:
        return f"element {tag_text(tag)}{self._in(frame)} declares {length} bytes, {room} remain"

    def _in(self, frame: _Frame) -> str:
        if frame.tag == _TOP:
            return ""
        if frame.sequence:
            return f" in sequence {tag_text(frame.tag)}"
        return f" in item {frame.item} of {tag_text(frame.tag)}"
