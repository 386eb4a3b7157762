"""dcm4che's `--filepath` pattern language: what the rest of pacs-ingest may use of it.

`Pattern` parses a pattern once and renders it for each object (`filepath`); `PatternError` and
`RenderError` are its two failures (`errors`). The worker's header reader also reads attribute
values as the language does (`values`): the SOP Instance UID, the Specific Character Set, which
VRs are bulk data. Everything else here (placeholders, dcm4che's digests, the Java formats in
`java/`) is internal to the language.
"""

from pacs_ingest.shared.pattern.errors import PatternError, RenderError
from pacs_ingest.shared.pattern.filepath import Pattern
from pacs_ingest.shared.pattern.values import (
    BULK_VRS,
    SPECIFIC_CHARACTER_SET,
    Item,
    resolved_vr,
    string_value,
)

__all__ = [
    "BULK_VRS",
    "SPECIFIC_CHARACTER_SET",
    "Item",
    "Pattern",
    "PatternError",
    "RenderError",
    "resolved_vr",
    "string_value",
]
