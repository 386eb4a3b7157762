"""Attribute values as dcm4che's `--filepath` language reads them (reference §5.2, §5.3).

Text is decoded with the Specific Character Set in force (an item's own, else its parent's), so a
Japanese or Greek name becomes the right Unicode, split at `\\` and trimmed as Java's
`String.trim` does. Binary numbers give the number at the value index. Large binary values are
not read by the worker's header reader (workers.header): they are absent here and count as
missing, as dcm4che does not load bulk data.

Nothing here makes values safe for paths: `placeholder` does that after typing them, so `hash`
and `md5` still see the raw value and stay bit-exact with dcm4che.
"""

import math
import re
import struct
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag
from pydicom.valuerep import PN_DELIMS, TEXT_VR_DELIMS

from pacs_ingest.shared.javalang import INT32_MAX, INT32_MIN, TRIMMED, trim
from pacs_ingest.shared.pattern.errors import RenderError
from pacs_ingest.shared.pattern.java.text import parse_double

SPECIFIC_CHARACTER_SET = 0x00080005
_BACKSLASH = 0x5C
_SPLIT_TEXT = frozenset(
    ["AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UC", "UI"]
)
_WHOLE_TEXT = frozenset(["LT", "ST", "UT", "UR"])
_CHARSET_TEXT = frozenset(["LO", "LT", "PN", "SH", "ST", "UC", "UT"])
_BINARY = {
    "US": "H", "SS": "h", "UL": "L", "SL": "l", "SV": "q", "UV": "Q", "FL": "f", "FD": "d",
    "AT": "L", "OB": "B", "UN": "B", "OW": "H", "OL": "L", "OF": "f", "OD": "d", "OV": "Q",
}  # fmt: skip
BULK_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])
_FLOATS = frozenset(["FL", "FD", "OF", "OD"])
_INTEGERS = frozenset(_BINARY) - _FLOATS - {"AT"}
_IS = re.compile(r"[+-]?[0-9]+")
_DA = re.compile(r"([0-9]{4})\.?([0-9]{2})\.?([0-9]{2})")
_TM = re.compile(r"([0-9]{2})(?::?([0-9]{2})(?::?([0-9]{2})(?:\.([0-9]{1,6}))?)?)?")
_DT = re.compile(
    r"([0-9]{4})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})(?:([0-9]{2})"
    r"(?:\.([0-9]{1,6}))?)?)?)?)?)?([+-][0-9]{4})?"
)
_EPOCH_DAY = (1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Item:
    """A data set (the object, or a sequence item) and the Python encodings of its text."""

    dataset: Dataset
    encodings: tuple[str, ...]

    @classmethod
    def top(cls, dataset: Dataset) -> "Item":
        return cls(dataset, _encodings(dataset, ("iso8859",)))

    def first_item_of(self, tag: int) -> "Item | None":
        """The first item of sequence `tag`; None when absent, empty or not a sequence."""
        if tag < 0 or self.dataset.get_item(tag, keep_deferred=True) is None:
            return None
        try:
            element = self.dataset[tag]
        except Exception as exc:  # pydicom raises many kinds for a corrupt sequence
            raise RenderError(f"cannot read sequence {tag:08X}: {exc}") from exc
        if element.VR != "SQ" or not element.value:
            return None
        first = element.value[0]
        return Item(first, _encodings(first, self.encodings))


def _encodings(dataset: Dataset, inherited: tuple[str, ...]) -> tuple[str, ...]:
    element = dataset.get(SPECIFIC_CHARACTER_SET)
    if element is None or not element.value:
        return inherited
    return tuple(convert_encodings(element.value))


@dataclass(frozen=True, slots=True)
class _Element:
    vr: str
    text: str | None = None  # text VRs: the whole decoded value
    numbers: tuple[int | float, ...] = ()  # binary VRs


def resolved_vr(tag: int, vr: str | None) -> str:
    """The VR a raw element is read with: as written, else (implicit VR, or UN for a public tag)
    the dictionary's, else UN; of an ambiguous one ("OB or OW") the first."""
    if vr is None or (vr == "UN" and not Tag(tag).is_private):
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            vr = "UN"
    return str(vr).split(" or ")[0]


def _element(item: Item, tag: int) -> _Element | None:
    if tag < 0:
        return None
    element = item.dataset.get_item(tag, keep_deferred=True)
    if element is None:
        return None
    if isinstance(element, RawDataElement):
        vr = resolved_vr(element.tag, element.VR)
        if vr == "SQ":
            return _Element(vr)
        if element.value is None:
            return None  # pydicom reads an empty binary value as None
        return _from_bytes(vr, element.value, item, little=element.is_little_endian)
    return _from_element(element, item)


def _decode(vr: str, value: bytes, item: Item) -> str:
    if vr not in _CHARSET_TEXT:
        return value.decode("latin-1")
    delimiters = set(TEXT_VR_DELIMS)
    if vr in _SPLIT_TEXT:
        delimiters.add(_BACKSLASH)
    if vr == "PN":
        delimiters |= PN_DELIMS | {ord("=")}
    return decode_bytes(value, list(item.encodings), delimiters)


def _from_bytes(vr: str, value: bytes, item: Item, *, little: bool) -> _Element:
    if vr in _SPLIT_TEXT or vr in _WHOLE_TEXT:
        return _Element(vr, text=_decode(vr, value, item))
    code = _BINARY.get(vr)
    if code is None:
        return _Element(vr)
    size = struct.calcsize("<" + code)  # standard sizes, not the platform's
    count = len(value) // size
    numbers = struct.unpack(f"{'<' if little else '>'}{count}{code}", value[: count * size])
    if vr == "AT":  # two 16-bit halves in file order: group, then element
        halves = struct.unpack(f"{'<' if little else '>'}{count * 2}H", value[: count * size])
        numbers = tuple(g << 16 | e for g, e in zip(halves[::2], halves[1::2], strict=True))
    return _Element(vr, numbers=numbers)


def _from_element(element: DataElement, item: Item) -> _Element | None:
    vr = str(element.VR).split(" or ")[0]
    value = element.value
    if vr == "SQ":
        return _Element(vr)
    if value is None:
        return None
    if isinstance(value, bytes):
        return _from_bytes(vr, value, item, little=True)
    values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    if vr in _SPLIT_TEXT or vr in _WHOLE_TEXT:
        return _Element(vr, text="\\".join(str(v) for v in values))
    if vr in _BINARY:
        return _Element(vr, numbers=tuple(values))
    return _Element(vr)


def _text_at(element: _Element, index: int) -> str | None:
    if element.text is None:
        return None
    if element.vr in _WHOLE_TEXT:
        text = element.text.rstrip(TRIMMED) if index == 0 else ""  # at the end only
    else:
        values = element.text.split("\\")
        text = trim(values[index]) if index < len(values) else ""
    return text or None


def _number_at(element: _Element, index: int) -> int | float | None:
    return element.numbers[index] if index < len(element.numbers) else None


def string_value(item: Item, tag: int, index: int) -> str | None:
    """The value at `index` as text; None when missing (absent, empty, blank)."""
    element = _element(item, tag)
    if element is None:
        return None
    if element.text is not None:
        return _text_at(element, index)
    number = _number_at(element, index)
    if number is None:
        return None
    if element.vr == "AT":
        return f"{number:08X}"
    if isinstance(number, float):
        return java_double_text(number, single=element.vr in ("FL", "OF"))
    return str(number)


def double_value(item: Item, tag: int, index: int) -> float:
    """The value as dcm4che's `number` and `choice` see it: DS and binary numbers, else 0."""
    element = _element(item, tag)
    if element is None or element.vr == "AT":
        return 0.0
    if element.vr == "DS":
        text = _text_at(element, index)
        if text is None:
            return 0.0
        try:
            return parse_double(text)
        except ValueError:
            raise RenderError(f"{tag:08X} is not a decimal string: {text!r}") from None
    number = _number_at(element, index)
    return 0.0 if number is None else float(number)


def int_value(item: Item, tag: int, index: int) -> int | None:
    """The value as dcm4che's `offset` sees it: IS and binary integers; DS and the rest give 0."""
    element = _element(item, tag)
    if element is None:
        return None
    if element.vr == "IS":
        text = _text_at(element, index)
        if text is None:
            return None
        if not _IS.fullmatch(text) or not INT32_MIN <= int(text) <= INT32_MAX:
            raise RenderError(f"{tag:08X} is not an integer string: {text!r}")
        return int(text)
    if element.vr in _INTEGERS:
        number = _number_at(element, index)
        return None if number is None else int(number)
    present = _text_at(element, index) or _number_at(element, index) is not None
    return 0 if present else None


def date_value(item: Item, tag: int, index: int) -> datetime | None:
    """A DA, DT or TM value as a naive local date-time (a TM on 1970-01-01); None if missing.

    A DT's UTC offset is ignored: the wall-clock time as written is what the path shows.
    """
    element = _element(item, tag)
    if element is None:
        return None
    text = _text_at(element, index)
    if element.vr not in ("DA", "DT", "TM"):
        if text is None and not element.numbers:
            return None
        raise RenderError(f"{tag:08X} has VR {element.vr}, not a date or time")
    if text is None:
        return None
    try:
        return _parse_date_time(element.vr, text)
    except ValueError:
        raise RenderError(f"{tag:08X} is not a valid {element.vr}: {text!r}") from None


def _parse_date_time(vr: str, text: str) -> datetime:
    pattern = {"DA": _DA, "DT": _DT, "TM": _TM}[vr]
    match = pattern.fullmatch(text)
    if match is None:
        raise ValueError(text)
    if vr == "DA":
        return datetime(*(int(group) for group in match.groups()))
    if vr == "TM":
        hour, minute, second, fraction = match.groups()
        return datetime(*_EPOCH_DAY, *_clock(hour, minute, second, fraction))
    year, month, day, hour, minute, second, fraction, _offset = match.groups()
    return datetime(
        int(year), int(month or 1), int(day or 1), *_clock(hour, minute, second, fraction)
    )


def _clock(*parts: str | None) -> tuple[int, int, int, int]:
    hour, minute, second, fraction = parts
    micro = int((fraction or "").ljust(6, "0"))
    return int(hour or 0), int(minute or 0), int(second or 0), micro


def java_double_text(value: float, *, single: bool) -> str:
    """Java's `Double.toString` (or `Float.toString`) layout of the shortest round-trip digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    shortest = repr(value)
    if single:
        for precision in range(1, 10):
            candidate = f"{value:.{precision}g}"
            if struct.unpack("f", struct.pack("f", float(candidate)))[0] == value:
                shortest = candidate
                break
    number = Decimal(shortest)
    sign = "-" if number < 0 else ""
    number = abs(number)
    if Decimal("0.001") <= number < Decimal(10_000_000):
        text = f"{number:f}"
        return sign + (text if "." in text else text + ".0")
    digits = number.as_tuple().digits
    head, tail = str(digits[0]), "".join(map(str, digits[1:])).rstrip("0") or "0"
    return f"{sign}{head}.{tail}E{number.adjusted()}"
