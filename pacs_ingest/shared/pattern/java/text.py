"""What the java.text emulations share: their syntax error, and Java's rule for quoted text.

`java.number`, `java.date` and `java.message` re-implement the parts of Java's
DecimalFormat, SimpleDateFormat, ChoiceFormat and MessageFormat that dcm4che's `--filepath`
language exposes. Each sub-format reads apostrophes the same way, implemented once here.
"""

import re

from pacs_ingest.shared.javalang import trim


class FormatSyntaxError(ValueError):
    """Raised for a sub-format pattern Java would refuse; `position` is 0-based in that pattern."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


class FormatArgumentError(ValueError):
    """Raised at format time when an argument does not suit its format (a string as a number)."""


def read_quoted(pattern: str, index: int) -> tuple[str, int]:
    """The literal text of the quote starting at `pattern[index] == "'"`, and where it ends.

    `''` is one apostrophe, inside or outside a quoted section; `'text'` is `text`.
    """
    if pattern.startswith("''", index):
        return "'", index + 2
    text: list[str] = []
    position = index + 1
    while position < len(pattern):
        char = pattern[position]
        if char == "'":
            if pattern.startswith("''", position):
                text.append("'")
                position += 2
                continue
            return "".join(text), position + 1
        text.append(char)
        position += 1
    raise FormatSyntaxError("unterminated quote", index)


_DOUBLE = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?)"
)


def parse_double(text: str) -> float:
    """Java's `Double.parseDouble` for decimal text (no hex floats); ValueError otherwise."""
    stripped = trim(text)
    if not _DOUBLE.fullmatch(stripped):
        raise ValueError(f"not a number: {text!r}")
    return float(stripped.rstrip("fFdD").replace("Infinity", "inf"))
