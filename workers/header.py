"""Read just enough of a spooled object to render its path.

pydicom's `read_partial` stops at the first element past the highest tag the pattern needs (and
always before Pixel Data), and defers large values: a multi-frame enhanced object costs well under
a millisecond this way, where `dcmread(stop_before_pixels=True)` parses every functional group.
"""

from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

PIXEL_DATA = 0x7FE00010
_DEFER_OVER_BYTES = 1024


class HeaderError(ValueError):
    """Raised when the data set cannot be parsed far enough to render the path."""


def read_header(fp: BinaryIO, stop_after: int) -> Dataset:
    """Parse the Part 10 file `fp` (at its start) up to top-level tag `stop_after`, inclusive."""
    limit = min(stop_after, PIXEL_DATA - 1)

    def past_limit(tag: BaseTag, vr: str | None, length: int) -> bool:
        return tag > limit

    try:
        return read_partial(fp, stop_when=past_limit, defer_size=_DEFER_OVER_BYTES)
    except (InvalidDicomError, EOFError, ValueError, KeyError, NotImplementedError) as exc:
        raise HeaderError(f"cannot parse data set: {exc}") from exc
