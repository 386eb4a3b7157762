"""Time the worker's header stage: reading what a pattern needs from each spooled object.

    python -m benchmarks.header [--count 500] [--bytes 8192] [--rounds 9]

Generates a corpus (benchmarks.corpus), then for each pattern reads every object's header as
the worker does (workers.header.read_filing_header, the file already open and its meta read)
for several rounds, and prints the median milliseconds per object.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import make_corpus
from pacs_ingest.shared import part10
from pacs_ingest.shared.pattern import Pattern
from pacs_ingest.workers.header import read_filing_header

PATTERNS = {
    "none": None,
    "issue 8": "{PatientID}/{PatientName}/{StudyDate,date,yyyy}/{SOPInstanceUID}.dcm",
    "dcm4chee-arc": "{now,date,yyyy/MM/dd}/{0020000D,hash}/{0020000E,hash}/{00080018,hash}",
}


def _round(paths: list[Path], tag_paths: tuple[tuple[int, ...], ...]) -> float:
    """Milliseconds per object for one pass over `paths`."""
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as fp:
            part10.read_file_meta(fp)
            read_filing_header(fp, tag_paths)
    return (time.perf_counter() - started) / len(paths) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--bytes", type=int, default=8192, help="approximate size of each file")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = make_corpus(Path(folder), args.count, size=args.bytes)
        for name, source in PATTERNS.items():
            tag_paths = Pattern.parse(source).tag_paths if source else ()
            times = [_round(paths, tag_paths) for _ in range(args.rounds)]
            print(f"{name:>13}: {statistics.median(times):.3f} ms/object (median of {args.rounds})")


if __name__ == "__main__":
    main()
