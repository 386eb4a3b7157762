"""`pacs-ingest render PATTERN FILE...`: the archive path each file would get, before any modality
is pointed at the receiver, so a `--filepath` layout can be designed and checked on real files.

It reads each file exactly as a worker does (the header up to the last attribute the pattern
needs and the SOP Instance UID, never Pixel Data; an object without a SOP Instance UID is not
filed), renders with the current time and fresh randomness, and applies the safety rule.
Output: one archive-relative path per file, in order, on stdout. A file that cannot be read or
rendered gets `FILE: error: ...` on stderr instead, and the exit status is 1; a bad pattern exits
2 with the column, as at receiver start-up. PATTERN and FILE are operands of the one option parser
(shared.options), so `-h`, bad options and their exit status are as for every other command.
"""

import argparse
import random
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from pacs_ingest.shared.exit_codes import ExitCode
from pacs_ingest.shared.options import LOG_LEVEL_ROW, ConfigError, OptionsError
from pacs_ingest.shared.pattern import Pattern, PatternError, RenderError
from pacs_ingest.shared.safe_path import UnsafePathError, relative_path
from pacs_ingest.workers.header import HeaderError, NoSOPInstanceUID, read_filing_header

USAGE = "pacs-ingest render [options] PATTERN FILE..."
DESCRIPTION = (
    "Render PATTERN (dcm4che's --filepath language, see the README; e.g. "
    "'{now,date,yyyy/MM/dd}/{0020000D,hash}/{00080018}.dcm') for each DICOM Part 10 FILE and "
    "print the path below --directory it would be filed at."
)
ROWS = (LOG_LEVEL_ROW,)


def _pattern(text: str) -> Pattern:
    try:
        return Pattern.parse(text)
    except PatternError as exc:
        raise ConfigError(str(exc)) from None


def render_file(pattern: Pattern, path: Path, *, now: datetime, rng: random.Random) -> str:
    """The archive-relative path for `path`; raises OSError, HeaderError, NoSOPInstanceUID,
    RenderError or UnsafePathError when there is none."""
    with open(path, "rb") as fp:
        header = read_filing_header(fp, pattern.tag_paths)
        rendered = pattern.render(header, now=now, rng=rng)
    return str(relative_path(rendered))


def run(pattern: Pattern, files: Sequence[Path]) -> int:
    if pattern.dropped:
        print(
            f"pacs-ingest render: warning: an unclosed '{{' drops {pattern.dropped!r} from the "
            "pattern (dcm4che drops it too)",
            file=sys.stderr,
        )
    rng = random.Random()
    status = ExitCode.OK
    for path in files:
        try:
            archive_path = render_file(pattern, path, now=datetime.now(), rng=rng)
        except (OSError, HeaderError, NoSOPInstanceUID, RenderError, UnsafePathError) as exc:
            print(f"{path}: error: {exc}", file=sys.stderr)
            status = ExitCode.FAILED
            continue
        print(archive_path)  # outside the try: a closed stdout is no error of this file's
    return status


def main(args: argparse.Namespace) -> int:
    """Render the operands: OptionsError without a PATTERN and a FILE."""
    if len(args.operands) < 2:
        raise OptionsError("missing PATTERN or FILE: give a pattern and at least one file")
    pattern, *files = args.operands
    return run(_pattern(pattern), [Path(name) for name in files])
