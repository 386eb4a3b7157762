"""Java's `MessageFormat` and `ChoiceFormat` (en_US), as dcm4che's `--filepath` relies on them.

dcm4che turns a `--filepath` pattern into one MessageFormat pattern, so its literal text obeys
MessageFormat's apostrophe rules, and `{n,number,...}`, `{n,date,...}`, `{n,time,...}` and
`{n,choice,...}` are sub-formats. A choice's chosen text is formatted again as a MessageFormat
with *all* arguments when it contains `{`, so `{0}` inside it means argument 0 (Java's rule).
Arguments are `str`, `float`, `datetime` or `None`, which prints `null` as in Java.

Deliberate difference: choice texts with `{` are parsed here, when the pattern is, so a broken
one is refused at start-up instead of failing each object that reaches it.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pacs_ingest.shared.pattern.java.date import (
    DATE_STYLES,
    DEFAULT_DATE_TIME,
    TIME_STYLES,
    SimpleDateFormat,
)
from pacs_ingest.shared.pattern.java.date import date_format as _date_format
from pacs_ingest.shared.pattern.java.number import STYLE_PATTERNS, DecimalFormat
from pacs_ingest.shared.pattern.java.text import (
    FormatArgumentError,
    FormatSyntaxError,
    parse_double,
)

Argument = str | float | datetime | None

_MAX_ARGUMENT = 10_000  # java.text.MessageFormat refuses indexes from here on
_ARGUMENT_INDEX = re.compile(r"\+?[0-9]+")
_TYPES = ("", "number", "date", "time", "choice")
_DEFAULT_NUMBER = DecimalFormat.parse(STYLE_PATTERNS[""])
_DEFAULT_DATE = SimpleDateFormat.parse(DEFAULT_DATE_TIME)
_INFINITY = "\u221e"
_LESS_OR_EQUAL = "\u2264"


@dataclass(frozen=True, slots=True)
class ChoiceFormat:
    """Ascending limits, each with the text chosen from it on (`0#none|1#one|1<many`)."""

    limits: tuple[float, ...]
    texts: tuple[str, ...]
    messages: tuple["MessageFormat | None", ...]  # texts with `{`, parsed

    @classmethod
    def parse(cls, pattern: str) -> "ChoiceFormat":
        """Java's `ChoiceFormat.applyPattern`, which also requires at least one interval."""
        limits: list[float] = []
        texts: list[str] = []
        segments = ["", ""]
        part = 0
        in_quote = False
        start = 0.0  # Java's initial value, used by a '|' before any limit
        index = 0
        while index < len(pattern):
            char = pattern[index]
            if char == "'":
                if pattern.startswith("''", index):
                    segments[part] += "'"
                    index += 1
                else:
                    in_quote = not in_quote
            elif in_quote:
                segments[part] += char
            elif char in "<#" + _LESS_OR_EQUAL:
                start = _limit(segments[0], char, limits, index)
                segments[0], part = "", 1
            elif char == "|":
                limits.append(start)
                texts.append(segments[1])
                segments[1], part = "", 0
            else:
                segments[part] += char
            index += 1
        if part == 1:
            limits.append(start)
            texts.append(segments[1])
        if not limits:
            raise FormatSyntaxError("a choice needs at least one 'limit#text' interval", 0)
        messages = tuple(MessageFormat.parse(t) if "{" in t else None for t in texts)
        return cls(tuple(limits), tuple(texts), messages)

    def choose(self, number: float) -> int:
        index = 0
        while index < len(self.limits) and number >= self.limits[index]:
            index += 1
        return max(index - 1, 0)


def _limit(text: str, kind: str, limits: list[float], index: int) -> float:
    if not text:
        raise FormatSyntaxError("each choice interval needs a number before its text", index)
    if text == _INFINITY:
        value = math.inf
    elif text == "-" + _INFINITY:
        value = -math.inf
    else:
        try:
            value = parse_double(text)
        except ValueError:
            raise FormatSyntaxError(f"{text!r} is not a choice limit", index) from None
    if kind == "<" and not math.isinf(value):
        value = math.nextafter(value, math.inf)
    if limits and value <= limits[-1]:
        raise FormatSyntaxError("choice limits must be in ascending order", index)
    return value


SubFormat = DecimalFormat | SimpleDateFormat | ChoiceFormat


@dataclass(frozen=True, slots=True)
class Field:
    """One `{argument[,type[,style]]}` element."""

    argument: int
    format: SubFormat | None


@dataclass(frozen=True, slots=True)
class MessageFormat:
    parts: tuple[str | Field, ...]

    @classmethod
    def parse(cls, pattern: str) -> "MessageFormat":
        """Java's `MessageFormat.applyPattern`; FormatSyntaxError positions index `pattern`."""
        return _Parser(pattern).run()

    def format(self, arguments: Sequence[Argument]) -> str:
        """The text; raises FormatArgumentError when an argument does not suit its format."""
        return "".join(
            part if isinstance(part, str) else _format_field(part, arguments) for part in self.parts
        )

    @property
    def fields(self) -> tuple[Field, ...]:
        return tuple(part for part in self.parts if isinstance(part, Field))


def _format_field(field: Field, arguments: Sequence[Argument]) -> str:  # noqa: PLR0911
    if field.argument >= len(arguments):
        return f"{{{field.argument}}}"
    value = arguments[field.argument]
    if value is None:
        return "null"
    fmt = field.format
    if fmt is None:
        if isinstance(value, float):
            return _DEFAULT_NUMBER.format(value)
        if isinstance(value, datetime):
            return _DEFAULT_DATE.format(value)
        return value
    if isinstance(fmt, SimpleDateFormat):
        if not isinstance(value, datetime):
            raise FormatArgumentError(f"cannot format {value!r} as a date")
        return fmt.format(value)
    if not isinstance(value, float):
        raise FormatArgumentError(f"cannot format {value!r} as a number")
    if isinstance(fmt, DecimalFormat):
        return fmt.format(value)
    chosen = fmt.choose(value)
    message = fmt.messages[chosen]
    return fmt.texts[chosen] if message is None else message.format(arguments)


class _Parser:
    """One pass over a MessageFormat pattern, segment by segment as Java reads it."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.parts: list[str | Field] = []
        self.raw: list[str] = []

    def run(self) -> MessageFormat:
        pattern = self.pattern
        in_quote = False
        index = 0
        while index < len(pattern):
            char = pattern[index]
            if char == "'":
                if pattern.startswith("''", index):
                    self.raw.append("'")
                    index += 1
                else:
                    in_quote = not in_quote
            elif char == "{" and not in_quote:
                index = self._field(index)
            else:
                self.raw.append(char)
            index += 1
        self._flush()
        return MessageFormat(tuple(self.parts))

    def _flush(self) -> None:
        if self.raw:
            self.parts.append("".join(self.raw))
            self.raw = []

    def _field(self, opening: int) -> int:
        """Read the element opened at `opening`; returns the index of its closing `}`."""
        pattern = self.pattern
        segments = [""]
        starts = [opening + 1]
        in_quote = False
        depth = 0
        index = opening + 1
        while index < len(pattern):
            char = pattern[index]
            if in_quote:
                segments[-1] += char
                in_quote = char != "'"
            elif char == "," and len(segments) < 3:
                segments.append("")
                starts.append(index + 1)
            elif char == "}" and depth == 0:
                self._flush()
                self.parts.append(_make_field(segments, starts))
                return index
            elif char == " " and len(segments) == 2 and not segments[1]:
                pass  # Java skips spaces before the type
            else:
                depth += {"{": 1, "}": -1}.get(char, 0)
                in_quote = char == "'"
                segments[-1] += char
            index += 1
        if depth == 0:
            raise FormatSyntaxError("unmatched braces in the pattern", opening)
        return index  # Java drops an element left open inside nested braces, silently


def _make_field(segments: list[str], starts: list[int]) -> Field:
    index_text, type_text, style = ([*segments, "", ""])[:3]
    if not _ARGUMENT_INDEX.fullmatch(index_text):
        raise FormatSyntaxError(f"can't parse argument number {index_text!r}", starts[0])
    argument = int(index_text)
    if argument >= _MAX_ARGUMENT:
        raise FormatSyntaxError("argument index too large", starts[0])
    kind = _keyword(type_text, _TYPES)
    if kind is None:
        raise FormatSyntaxError(f"unknown format type {type_text!r}", starts[1])
    style_start = starts[2] if len(starts) > 2 else starts[-1]
    try:
        return Field(argument, _sub_format(kind, style))
    except FormatSyntaxError as exc:
        raise FormatSyntaxError(exc.message, style_start + exc.position) from None


def _keyword(text: str, keywords: Sequence[str]) -> str | None:
    if text in keywords:
        return text
    lowered = text.strip().lower()
    return lowered if lowered in keywords else None


def _sub_format(kind: str, style: str) -> SubFormat | None:
    if kind == "number":
        keyword = _keyword(style, tuple(STYLE_PATTERNS))
        return DecimalFormat.parse(STYLE_PATTERNS[keyword] if keyword is not None else style)
    if kind == "date":
        return _date_format(style, DATE_STYLES)
    if kind == "time":
        return _date_format(style, TIME_STYLES)
    if kind == "choice":
        return ChoiceFormat.parse(style)
    return None
