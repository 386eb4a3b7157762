"""What to do when an object's path in the archive is already taken (--duplicates).

    keep-both                 drop the new one if identical, else keep both: the new one gets
                              the name plus "~" and a digest (the default)
    overwrite                 replace the archived file (the reference's behaviour)
    keep-existing             keep the archived file, drop the new one
    quarantine-if-different   drop the new one if identical, else move it to failed/

"Identical" compares SHA-256 digests of the data sets (the bytes after the file meta), so the same
object sent by two peers, whose file metas differ, counts as the same. A file at the path that is
no Part 10 file (put there by something else) differs from every object.
"""

import hashlib
from pathlib import Path

from pacs_ingest.shared import part10
from pacs_ingest.shared.filing import DUPLICATE_POLICIES

OVERWRITE, KEEP_EXISTING, KEEP_BOTH, QUARANTINE_IF_DIFFERENT = DUPLICATE_POLICIES


class DuplicateDiffers(Exception):
    """Raised under quarantine-if-different when the archived object has other content."""

    def __init__(self, existing: Path) -> None:
        super().__init__(f"{existing} is archived with different content")
        self.existing = existing


def archived_digest(path: Path) -> str | None:
    """The data set digest of the file archived at `path`; None if it is no Part 10 file."""
    try:
        return dataset_digest(path)
    except part10.FileMetaError:
        return None


def dataset_digest(path: Path) -> str:
    with open(path, "rb") as fp:
        part10.read_file_meta(fp)
        digest = hashlib.sha256()
        while chunk := fp.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def alternative(target: Path, digest: str) -> Path:
    """Where keep-both puts an object whose path is taken by a different one: stable, so that
    filing the same object again finds its own earlier copy."""
    suffix = target.suffix
    if suffix[1:].isdigit():  # a UID's last component, not an extension
        suffix = ""
    stem = target.name[: len(target.name) - len(suffix)]
    return target.with_name(f"{stem}~{digest[:16]}{suffix}")
