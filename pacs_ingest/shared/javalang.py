"""Two rules of java.lang that dcm4che's behaviour inherits, defined once for every place that
must read text or numbers as dcm4che does: the options, the receiver's AE titles, the pattern
language and its Java formats.
"""

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # Java's Integer.MIN_VALUE and MAX_VALUE
TRIMMED = "".join(map(chr, range(0x21)))  # what String.trim() drops: U+0000 to U+0020


def trim(text: str) -> str:
    """Java's String.trim(): drop leading and trailing characters up to U+0020."""
    return text.strip(TRIMMED)
