"""Where and how objects are filed (`Filing`), and the storage options that say so.

Receivers write these settings into each spool lane for the workers; `reprocess` takes the same
options to file what it is given. The rows are named after dcm4che's storescp options, except
--duplicates, which is ours.
"""

import argparse
import os
from dataclasses import dataclass

from pacs_ingest.shared.options import Option, dicom_int, from_options, non_negative, one_of
from pacs_ingest.shared.pattern import Pattern, PatternError

# --duplicates, applied by workers.duplicates; the first is the reference's behaviour. The
# default keeps a different object beside the one at its path: nothing is overwritten unasked.
DUPLICATE_POLICIES = ("overwrite", "keep-existing", "keep-both", "quarantine-if-different")
DEFAULT_DUPLICATES = "keep-both"
STORAGE = "storage"


@dataclass(frozen=True, slots=True)
class Filing:
    """Where and how a spool's objects are filed; named after dcm4che's options."""

    directory: str
    filepath: str | None
    rename_retries: int
    rename_retry_jitter: int  # milliseconds
    duplicates: str = DEFAULT_DUPLICATES  # see workers.duplicates

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "Filing":
        return from_options(cls, args, directory=os.path.abspath(args.directory))


def filepath_pattern(text: str) -> str:
    """A --filepath pattern, checked now so a bad one stops start-up rather than every store."""
    try:
        Pattern.parse(text)
    except PatternError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


ROWS = (
    Option(
        ("--directory",),
        "archive root: objects are filed below it",
        STORAGE,
        type=str,
        default=".",
        metavar="path",
    ),
    Option(
        ("--filepath",),
        "file path of each object below --directory, e.g. "
        "'{00100020}/{0020000D}/{0020000E}/{00080018}.dcm'; default: the SOP Instance UID",
        STORAGE,
        type=filepath_pattern,
        metavar="pattern",
    ),
    Option(
        ("--rename-retries",),
        "extra attempts to move an object into the archive",
        STORAGE,
        type=non_negative(dicom_int),
        default=3,
        metavar="count",
    ),
    Option(
        ("--rename-retry-jitter",),
        "longest random pause between those attempts",
        STORAGE,
        type=non_negative(dicom_int),
        default=50,
        metavar="ms",
    ),
    Option(
        ("--duplicates",),
        "when an object's path is taken: keep-both (a different newcomer gets ~digest in its "
        "name, an identical one is dropped), overwrite (the reference's behaviour), "
        "keep-existing, or quarantine-if-different (a different newcomer goes to failed/)",
        STORAGE,
        type=one_of("--duplicates", DUPLICATE_POLICIES),
        default=DEFAULT_DUPLICATES,
        metavar="policy",
    ),
)
