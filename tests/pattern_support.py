"""Rendering helpers for the pattern tests: data sets go through real Part 10 bytes and the
worker's own header reader, so values arrive as raw elements exactly as in production."""

import io
import random
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pacs_ingest.shared.pattern import Pattern
from pacs_ingest.workers.header import read_header

NOW = datetime(2024, 2, 29, 13, 5, 9, 250_000)
SYNTAXES = {
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "big": ExplicitVRBigEndian,
}


def part10(dataset: Dataset, syntax: str = "explicit") -> bytes:
    """`dataset` as a Part 10 file, written by pydicom in the given transfer syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = SYNTAXES[syntax]
    dataset.file_meta = meta
    buffer = io.BytesIO()
    dataset.save_as(
        buffer,
        implicit_vr=syntax == "implicit",
        little_endian=syntax != "big",
        enforce_file_format=True,
    )
    return buffer.getvalue()


def read_back(dataset: Dataset, pattern: Pattern, syntax: str = "explicit") -> Dataset:
    """What a worker sees of `dataset`: the header read as far as the pattern needs."""
    return read_header(io.BytesIO(part10(dataset, syntax)), pattern.tag_paths)


def render(
    source: str,
    dataset: Dataset | None = None,
    *,
    now: datetime = NOW,
    seed: int = 0,
    syntax: str = "explicit",
) -> str:
    """`source` rendered for `dataset` (read back from bytes) at `now`, randomness seeded."""
    pattern = Pattern.parse(source)
    header = read_back(dataset if dataset is not None else Dataset(), pattern, syntax)
    return pattern.render(header, now=now, rng=random.Random(seed))


def dataset(**attributes: object) -> Dataset:
    """A data set with the given keyword attributes."""
    ds = Dataset()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds
