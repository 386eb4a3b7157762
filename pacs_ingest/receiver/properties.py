"""Java `.properties` text, read as java.util.Properties reads it.

dcm4che's configuration files (the `--sop-classes` list of storescp) use this format: ISO-8859-1,
`#` or `!` comment lines, `key=value`, `key:value` or `key value`, a backslash at the end of a line
continues it on the next (whose leading white space is dropped), and `\\u` with four hex
digits, `\\t`, `\\n`, `\\r`, `\\f` escapes; any other escaped character stands for itself
(so `\\:` puts a colon in a key).
"""

from dataclasses import dataclass

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


class PropertiesError(ValueError):
    """Raised for text java.util.Properties would refuse (a malformed \\u escape)."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str
    line: int  # where the logical line starts, counted from 1


def _logical_lines(text: str) -> list[tuple[int, str]]:
    result: list[tuple[int, str]] = []
    pending: str | None = None
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.lstrip(_WHITESPACE)
        if pending is None:
            if not line or line[0] in "#!":
                continue
            start, pending = number, ""
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending += line[:-1]
            continue
        result.append((start, pending + line))
        pending = None
    if pending is not None:
        result.append((start, pending))
    return result


def _unescape(text: str, line: int) -> str:
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        index += 1
        if char != "\\" or index == len(text):
            out.append(char)
            continue
        char = text[index]
        index += 1
        if char == "u":
            digits = text[index : index + 4]
            try:
                out.append(chr(int(digits, 16)))
            except ValueError:
                raise PropertiesError(f"line {line}: malformed \\uxxxx escape") from None
            index += 4
        else:
            out.append(_ESCAPES.get(char, char))
    return "".join(out)


def _split(line: str) -> tuple[str, str]:
    """Key and value of one logical line, both still escaped."""
    index = 0
    while index < len(line):
        char = line[index]
        if char == "\\":
            index += 2
            continue
        if char in "=:" or char in _WHITESPACE:
            break
        index += 1
    key, rest = line[:index], line[index:].lstrip(_WHITESPACE)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_WHITESPACE)
    return key, rest


def parse(text: str) -> list[Entry]:
    """Every entry of `text` in order; a key given twice appears twice (the last one wins)."""
    entries = []
    for number, line in _logical_lines(text):
        key, value = _split(line)
        entries.append(Entry(_unescape(key, number), _unescape(value, number), number))
    return entries


def read(data: bytes) -> list[Entry]:
    """Entries of a `.properties` file's bytes (ISO-8859-1, as Java reads them)."""
    return parse(data.decode("iso-8859-1"))
