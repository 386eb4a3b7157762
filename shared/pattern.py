"""The `--filepath` pattern: parsed once at start-up, rendered for each object.

The language is dcm4che's AttributesFormat (reference §5): literal text with `{...}`
placeholders. This module parses a pattern into literal and placeholder segments and renders them
from a data set; every attribute value passes through `safe_path.safe_value` before it is placed.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from shared.safe_path import safe_value


class PatternError(ValueError):
    """Raised for an invalid pattern; `column` (1-based) points at the offending place."""

    def __init__(self, message: str, pattern: str, column: int) -> None:
        super().__init__(
            f"invalid --filepath at column {column}: {message}\n  {pattern}\n"
            f"  {' ' * (column - 1)}^"
        )
        self.column = column


@dataclass(frozen=True, slots=True)
class Placeholder:
    tag: int
    column: int


Segment = str | Placeholder


def _parse_tag(head: str, pattern: str, column: int) -> int:
    if head and all(c in "0123456789abcdefABCDEF" for c in head) and len(head) <= 8:
        return int(head, 16)
    tag = tag_for_keyword(head)
    if tag is None:
        raise PatternError(f"{head!r} is neither a hex tag nor a DICOM keyword", pattern, column)
    return tag


def _split(pattern: str) -> Iterable[tuple[str, int, bool]]:
    """(text, column, is_placeholder) pieces; braces nest, an unclosed `{` is dropped (§5.1)."""
    depth = 0
    start = 0
    for index, char in enumerate(pattern):
        if char == "{":
            if depth == 0:
                if index > start:
                    yield pattern[start:index], start + 1, False
                start = index + 1
            depth += 1
        elif char == "}":
            if depth == 0:
                raise PatternError("'}' without a matching '{'", pattern, index + 1)
            depth -= 1
            if depth == 0:
                yield pattern[start:index], start, True
                start = index + 1
    if depth == 0 and start < len(pattern):
        yield pattern[start:], start + 1, False


@dataclass(frozen=True, slots=True)
class Pattern:
    source: str
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, source: str) -> "Pattern":
        segments: list[Segment] = []
        for text, column, is_placeholder in _split(source):
            if not is_placeholder:
                segments.append(text)
                continue
            if not text:
                raise PatternError("empty placeholder '{}'", source, column)
            head, _, kind = text.partition(",")
            if kind:
                raise PatternError(f"placeholder type {kind!r} is not supported", source, column)
            segments.append(Placeholder(_parse_tag(head, source, column + 1), column))
        return cls(source, tuple(segments))

    @property
    def stop_tag(self) -> int:
        """The highest top-level tag rendering reads: header parsing may stop after it."""
        return max((s.tag for s in self.segments if isinstance(s, Placeholder)), default=0)

    def render(self, dataset: Dataset) -> str:
        """The rendered path text, with every attribute value made safe first."""
        return "".join(
            s if isinstance(s, str) else safe_value(_string_value(dataset, s.tag))
            for s in self.segments
        )


def _string_value(dataset: Dataset, tag: int) -> str:
    element = dataset.get(tag)
    if element is None or element.value is None or element.VR == "SQ":
        return ""
    value = element.value
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value[0] if element.VM > 1 else value)
    return text.split("\\", 1)[0].strip(" \x00")
