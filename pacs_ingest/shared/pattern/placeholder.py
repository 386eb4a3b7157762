"""One `{...}` placeholder of a `--filepath` pattern: its parts, and its value for one object.

`head[,type[,args]]` (reference §5.2, §5.4): the head is a tag path (`0040A730.00080100`, hex tags
or keywords, the first item of each sequence) with an optional value index (`00080008[1]`), or
`now...` (the clock), or `rnd...` (randomness). The value is the MessageFormat argument dcm4che
would pass: text, a double for `number`/`choice`, a date-time for `date`/`time`, or None, which
prints `null`.

Safety: text taken from an attribute (types none, `upper`, `slice`) passes `safe_value` here,
before it is placed, so a `/` in a value never makes a directory. The other types produce only
digits, hex, `0-9a-v` or `%XX`, and are left exactly as dcm4che computes them.
"""

import random
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydicom.datadict import tag_for_keyword

from pacs_ingest.shared.javalang import INT32_MAX, INT32_MIN
from pacs_ingest.shared.pattern import hashes
from pacs_ingest.shared.pattern.errors import RenderError
from pacs_ingest.shared.pattern.java.date import Period, parse_duration_seconds
from pacs_ingest.shared.pattern.java.message import Argument
from pacs_ingest.shared.pattern.java.text import FormatSyntaxError
from pacs_ingest.shared.pattern.values import (
    Item,
    date_value,
    double_value,
    int_value,
    string_value,
)
from pacs_ingest.shared.safe_path import safe_value

TEXT_TYPES = frozenset({"none", "upper", "slice"})
DIGEST_TYPES = frozenset({"hash", "md5", "urlencoded"})
MESSAGE_TYPES = frozenset({"number", "choice", "date", "time"})
RANDOM_TYPES = frozenset({"rnd", "uuid", "uid"})
TYPES = TEXT_TYPES | DIGEST_TYPES | MESSAGE_TYPES | RANDOM_TYPES | {"offset"}
_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_HEX_TAG = re.compile(r"[+-]?[0-9A-Fa-f]+")


class PlaceholderError(ValueError):
    """Raised by `parse` with a message and the 1-based column it concerns."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class Placeholder:
    body: str  # the text between the braces, for messages
    column: int  # of the first character of the body, 1-based
    path: tuple[int, ...]  # sequences, then the attribute; () for `now` and `rnd` heads
    index: int
    type: str
    args: str | None  # everything after the type's comma
    args_column: int
    numbers: tuple[int, ...] = ()  # slice bounds, or the offset
    period: Period | None = None
    seconds: int | None = None
    clock: bool = False  # head `now`

    def message_element(self, number: int) -> tuple[str, list[int]]:
        """This placeholder in the MessageFormat pattern, and each character's source column."""
        head = f"{{{number}"
        if self.type in MESSAGE_TYPES:
            head += f",{self.type}"
        columns = [self.column - 1] * len(head)
        if self.type in MESSAGE_TYPES and self.args is not None:
            head += "," + self.args
            columns += [self.args_column - 1] + [
                self.args_column + i for i in range(len(self.args))
            ]
        return head + "}", [*columns, self.column - 1]

    def argument(self, top: Item, *, now: datetime, rng: random.Random) -> Argument:
        """The MessageFormat argument for the object whose data set is `top`."""
        item: Item | None = top
        for sequence in self.path[:-1]:
            item = item.first_item_of(sequence) if item is not None else None
        if item is None:
            return None  # a sequence on the path is absent or empty: dcm4che prints null
        if self.type in RANDOM_TYPES:
            return _random(self.type, rng)
        if self.type in ("date", "time"):
            return self._moment(item, now)
        return self._attribute(item)

    def _attribute(self, item: Item) -> Argument:
        tag = self.path[-1] if self.path else -1  # `now` with another type: no attribute
        if self.type in ("number", "choice"):
            return double_value(item, tag, self.index)
        if self.type == "offset":
            value = int_value(item, tag, self.index)
            return str(_wrap32((value or 0) + self.numbers[0]))
        text = string_value(item, tag, self.index)
        if self.type in DIGEST_TYPES:
            return None if text is None else _DIGESTS[self.type](text)
        return safe_value(_text(self.type, text or "", self.numbers))

    def _moment(self, item: Item, now: datetime) -> datetime | None:
        moment = now if self.clock else date_value(item, self.path[-1], self.index)
        shift = self.period is not None or self.seconds is not None
        if moment is None:
            if shift:
                raise RenderError(f"{{{self.body}}}: the {self.type} to shift is missing")
            return None
        try:
            if self.period is not None:
                return self.period.add_to(moment)
            if self.seconds is not None:
                return moment + timedelta(seconds=self.seconds)
        except OverflowError:
            raise RenderError(f"{{{self.body}}}: date out of range") from None
        return moment


_DIGESTS = {
    "hash": hashes.java_hash,
    "md5": hashes.dcm4che_md5,
    "urlencoded": hashes.url_encode,
}


def _wrap32(value: int) -> int:
    return (value - INT32_MIN) % 2**32 + INT32_MIN


def _random(kind: str, rng: random.Random) -> str:
    if kind == "rnd":
        return f"{rng.getrandbits(32):08X}"
    value = uuid.UUID(int=rng.getrandbits(128), version=4)
    return str(value) if kind == "uuid" else f"2.25.{value.int}"


def _text(kind: str, text: str, numbers: tuple[int, ...]) -> str:
    if kind == "upper":
        return text.upper()
    if kind == "slice":
        return slice_text(text, *numbers)
    return text


def slice_text(text: str, begin: int, end: int | None = None) -> str:
    """dcm4che's `slice`: negative bounds count from the end; an end of 0 means the whole text."""
    length = len(text)
    if end == 0:
        begin, end = 0, None
    start = max(0, length + begin) if begin < 0 else begin
    if start > length:
        return ""
    if end is None:
        return text[start:]
    stop = length + end if end < 0 else min(length, end)
    return "" if stop < 0 or stop < start else text[start:stop]


def parse(body: str, column: int) -> Placeholder:
    """The placeholder whose body (the text between its braces) starts at 1-based `column`."""
    if not body:
        raise PlaceholderError("empty placeholder '{}'", column - 1)
    head, has_type, rest = body.partition(",")
    type_text, has_args, args_text = rest.partition(",")
    args = args_text if has_args else None
    type_column = column + len(head) + 1
    args_column = type_column + len(type_text) + 1
    kind, period, seconds = _type(type_text, type_column) if has_type else ("none", None, None)
    if head.startswith("rnd"):
        if kind == "none":
            kind = "rnd"
        elif kind not in ("uuid", "uid"):
            raise PlaceholderError(f"'rnd' takes the type uuid or uid, not {kind!r}", type_column)
        return Placeholder(body, column, (), 0, kind, args, args_column)
    clock = head.startswith("now")
    path, index = ((), 0) if clock else _head(head, column)
    numbers = _numbers(kind, args, args_column)
    return Placeholder(
        body, column, path, index, kind, args, args_column, numbers, period, seconds, clock
    )


def _type(text: str, column: int) -> tuple[str, Period | None, int | None]:
    if text in TYPES:
        return text, None, None
    try:
        if text.startswith("date"):
            return "date", Period.parse(text[4:]), None
        if text.startswith("time"):
            return "time", None, parse_duration_seconds(text[4:])
    except FormatSyntaxError as exc:
        raise PlaceholderError(exc.message, column + 4) from None
    known = ", ".join(sorted(TYPES))
    raise PlaceholderError(f"unknown type {text!r} (types: {known})", column)


def _head(head: str, column: int) -> tuple[tuple[int, ...], int]:
    index = 0
    path_text = head
    if head.endswith("]"):
        bracket = head.rfind("[")
        index_text = head[bracket + 1 : -1]
        if bracket < 0 or not _java_int(index_text) or int(index_text) < 0:
            raise PlaceholderError("a value index is written [0], [1], ...", column + bracket + 1)
        index = int(index_text)
        path_text = head[:bracket]
    path = []
    for element in path_text.split("."):
        path.append(_tag(element, column))
        column += len(element) + 1
    return tuple(path), index


def _tag(text: str, column: int) -> int:
    if _HEX_TAG.fullmatch(text) and INT32_MIN <= int(text, 16) <= INT32_MAX:
        return int(text, 16)  # Java's Integer.parseInt(text, 16)
    tag = tag_for_keyword(text)
    if tag is not None:
        return tag
    if not text:
        raise PlaceholderError("a tag is missing", column)
    if "[" in text:
        raise PlaceholderError("item indexes are not supported: the first item is used", column)
    if _HEX_TAG.fullmatch(text):
        raise PlaceholderError(
            "hex tags from group 8000 on are not supported; use the keyword", column
        )
    raise PlaceholderError(f"{text!r} is neither a hex tag nor a DICOM keyword", column)


def _java_int(text: str) -> bool:
    return bool(_JAVA_INT.fullmatch(text)) and INT32_MIN <= int(text) <= INT32_MAX


def _numbers(kind: str, args: str | None, column: int) -> tuple[int, ...]:
    if kind not in ("slice", "offset"):
        return ()
    parts = (args or "").split(",")
    while parts and not parts[-1]:
        parts.pop()  # Java's String.split drops trailing empty strings
    if not parts or len(parts) > (2 if kind == "slice" else 1):
        usage = "slice,begin[,end]" if kind == "slice" else "offset,n"
        raise PlaceholderError(f"write {usage} with integers", column)
    for part in parts:
        if not _java_int(part):
            raise PlaceholderError(f"{part!r} is not an integer", column)
        column += len(part) + 1
    return tuple(int(part) for part in parts)
