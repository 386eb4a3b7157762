"""The one rule that turns rendered attribute values into a path that stays inside the archive.

Two steps, both pure functions:

1. `safe_value` runs on every attribute value *before* it is placed into the pattern: path
   separators (`/` and `\\`), NUL, control characters (C0, DEL, C1) and unpaired surrogates
   become `_`. So a value can never create a directory or hide a terminal escape in a file name.
2. `relative_path` runs on the whole rendered string: it splits at `/` (separators the pattern's
   own literal text or date styles produced), drops empty components (so `/x` and `a//b` stay
   relative), replaces control characters and unpaired surrogates with `_`, replaces each `.` in
   a component that is only dots (`.`, `..`) with `_`, shortens components over 255 bytes
   (keeping a hash of the whole, so distinct long values stay distinct), and refuses an empty
   result or one longer than the file system allows. What it returns therefore has no `..`,
   is relative, and every component is valid UTF-8 of 1 to 255 bytes: it cannot leave the root.

dcm4che's storescp does none of this (reference §5.3, §9 item 8); the README lists it as a
deliberate difference.
"""

import hashlib
import re
from pathlib import PurePosixPath

NAME_MAX = 255  # bytes per component, as on every common POSIX file system
PATH_MAX = 4096  # bytes, Linux's limit for a whole path
_UNSAFE_IN_VALUE = re.compile(r"[/\\\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class UnsafePathError(ValueError):
    """Raised when a rendered path cannot be made into a valid path inside the archive."""


def safe_value(value: str) -> str:
    """`value` with separators and control characters replaced by `_`."""
    return _UNSAFE_IN_VALUE.sub("_", value)


def _shorten(component: str) -> str:
    encoded = component.encode("utf-8")
    if len(encoded) <= NAME_MAX:
        return component
    digest = hashlib.sha1(encoded).hexdigest()[:16]
    head = encoded[: NAME_MAX - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}~{digest}"


def _safe_component(component: str) -> str:
    component = _CONTROL.sub("_", component)
    if set(component) == {"."}:
        component = "_" * len(component)
    return _shorten(component)


def relative_path(rendered: str, *, root_length: int = 0) -> PurePosixPath:
    """The archive-relative path for `rendered`; `root_length` is the archive root's byte length.

    Raises UnsafePathError when nothing is left, or when root plus path exceed PATH_MAX.
    """
    components = [_safe_component(part) for part in rendered.split("/") if part]
    if not components:
        raise UnsafePathError(f"pattern rendered an empty path ({rendered!r})")
    path = PurePosixPath(*components)
    if root_length + 1 + len(str(path).encode("utf-8")) >= PATH_MAX:
        raise UnsafePathError(f"rendered path is longer than {PATH_MAX} bytes")
    return path
