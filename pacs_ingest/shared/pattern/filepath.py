"""The `--filepath` pattern: parsed once at start-up, rendered for each object.

The language is dcm4che's AttributesFormat (reference §5), rendered as dcm4che renders it: the
pattern is split at braces, each `{...}` becomes a placeholder, and the whole is assembled into
one Java MessageFormat pattern, so literal text follows MessageFormat's apostrophe rules
(`O'Brien/{x}` renders `OBrien/{0}`), and `number`, `date`, `time` and `choice` placeholders
are MessageFormat sub-formats. Values from attributes are made safe before they are formatted
(`shared.pattern.placeholder`); `shared.safe_path.relative_path` then checks the whole path.

Rendering is a pure function of the data set, the clock and the random source it is given.
"""

import random
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset

from pacs_ingest.shared.pattern.errors import PatternError, RenderError
from pacs_ingest.shared.pattern.java.message import MessageFormat
from pacs_ingest.shared.pattern.java.text import FormatArgumentError, FormatSyntaxError
from pacs_ingest.shared.pattern.placeholder import Placeholder, PlaceholderError
from pacs_ingest.shared.pattern.placeholder import parse as parse_placeholder
from pacs_ingest.shared.pattern.values import Item


@dataclass(frozen=True, slots=True)
class _Piece:
    text: str
    column: int  # 1-based column of text[0] in the pattern
    placeholder: bool


def _tokenise(pattern: str) -> tuple[list[_Piece], str]:
    """Literal and placeholder pieces, and the tail an unclosed `{` dropped (reference §5.1).

    Braces nest: the body of a placeholder keeps its inner braces. A `}` with no `{` open is an
    error; an unclosed `{` silently drops the rest of the pattern, as dcm4che does.
    """
    pieces: list[_Piece] = []
    depth = 0
    start = 0
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                if index > start:
                    pieces.append(_Piece(pattern[start:index], start + 1, False))
                start = index + 1
            depth += 1
        elif char == "}":
            if depth == 0:
                raise PatternError("'}' without a matching '{'", pattern, index + 1)
            depth -= 1
            if depth == 0:
                pieces.append(_Piece(pattern[start:index], start + 1, True))
                start = index + 1
    if depth:
        return pieces, pattern[start - 1 :]
    if start < len(pattern):
        pieces.append(_Piece(pattern[start:], start + 1, False))
    return pieces, ""


@dataclass(frozen=True, slots=True)
class Pattern:
    source: str
    placeholders: tuple[Placeholder, ...]
    message: MessageFormat
    dropped: str  # what an unclosed `{` cut off; empty for a well-formed pattern

    @classmethod
    def parse(cls, source: str) -> "Pattern":
        """Raises PatternError, with the 1-based column, for anything dcm4che would refuse."""
        pieces, dropped = _tokenise(source)
        placeholders: list[Placeholder] = []
        text: list[str] = []
        columns: list[int] = []
        for piece in pieces:
            if not piece.placeholder:
                text.append(piece.text)
                columns.extend(range(piece.column, piece.column + len(piece.text)))
                continue
            try:
                placeholder = parse_placeholder(piece.text, piece.column)
            except PlaceholderError as exc:
                raise PatternError(exc.message, source, exc.column) from None
            element, element_columns = placeholder.message_element(len(placeholders))
            placeholders.append(placeholder)
            text.append(element)
            columns.extend(element_columns)
        try:
            message = MessageFormat.parse("".join(text))
        except FormatSyntaxError as exc:
            column = columns[min(exc.position, len(columns) - 1)] if columns else 1
            raise PatternError(exc.message, source, column) from None
        return cls(source, tuple(placeholders), message, dropped)

    @property
    def tag_paths(self) -> tuple[tuple[int, ...], ...]:
        """The tag paths rendering reads (sequences, then the attribute): header reading may stop
        after the highest top-level tag among them. Clock and randomness read none."""
        return tuple(p.path for p in self.placeholders if p.path)

    def render(self, dataset: Dataset, *, now: datetime, rng: random.Random) -> str:
        """The rendered path text; values from attributes are already made safe in it.

        `now` is the clock's reading for `{now,...}` (a naive local time, as dcm4che formats in
        the local zone); `rng` supplies `rnd`, `uuid` and `uid`. Raises RenderError when this
        object cannot be rendered (e.g. `date-P1M` on a missing date).
        """
        top = Item.top(dataset)
        arguments = [p.argument(top, now=now, rng=rng) for p in self.placeholders]
        try:
            return self.message.format(arguments)
        except FormatArgumentError as exc:
            raise RenderError(str(exc)) from exc
