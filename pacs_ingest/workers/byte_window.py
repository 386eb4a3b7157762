"""A forward-only window over an object's bytes, held in a bounded buffer.

The header scanner reads element headers and the few values filing needs and skips everything
else: in a plain file by seeking, in a deflated data set by inflating into nothing. So memory
holds one chunk plus what is pinned (the first item of a sequence the pattern reads through),
whatever the object declares. Short reads are the caller's to judge: `take` and `skip` return
what there was, and the scanner names the element that claimed more.
"""

import os
import zlib
from typing import BinaryIO, Protocol

from pacs_ingest.workers.header_errors import HeaderError

CHUNK = 64 * 1024
_RAW_DEFLATE = -zlib.MAX_WBITS  # PS3.5 A.5: deflate without a zlib header, as pydicom reads it


class Source(Protocol):
    def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" once there are no more."""
        ...

    def discard(self, size: int) -> int:
        """Skip up to `size` bytes; how many were skipped."""
        ...

    def remaining(self) -> int | None:
        """How many bytes are left, if that is known without reading them."""
        ...


class FileSource:
    """A seekable file from its current position to its end."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self._pos = fp.tell()
        try:  # the size without seeking: a seek to the end would drop what fp has buffered
            self._end = os.fstat(fp.fileno()).st_size
        except (AttributeError, OSError):  # not a file (io.BytesIO: UnsupportedOperation)
            self._end = fp.seek(0, os.SEEK_END)
            fp.seek(self._pos)

    def read(self, size: int) -> bytes:
        data = self._fp.read(size)
        self._pos += len(data)
        return data

    def discard(self, size: int) -> int:
        skipped = max(0, min(size, self._end - self._pos))
        self._pos = self._fp.seek(skipped, os.SEEK_CUR)
        return skipped

    def remaining(self) -> int | None:
        return self._end - self._pos


class InflatedSource:
    """The inflated bytes of a deflated data set (Deflated Explicit VR Little Endian)."""

    def __init__(self, fp: BinaryIO) -> None:
        self._fp = fp
        self._inflater = zlib.decompressobj(_RAW_DEFLATE)
        self._pending = b""  # compressed input not yet given to the inflater
        self._drained = False  # the file has no more compressed input

    def read(self, size: int) -> bytes:
        parts: list[bytes] = []
        wanted = size
        while wanted > 0 and not self._inflater.eof:
            if not self._pending and not self._drained:
                self._pending = self._fp.read(CHUNK)
                self._drained = not self._pending
            try:
                data = self._inflater.decompress(self._pending, wanted)
            except zlib.error as exc:
                raise HeaderError(f"the deflated data set cannot be inflated: {exc}") from None
            self._pending = self._inflater.unconsumed_tail
            if not data and self._drained:
                break  # truncated stream: what there was is all there is
            parts.append(data)
            wanted -= len(data)
        return b"".join(parts)

    def discard(self, size: int) -> int:
        skipped = 0
        while skipped < size and (data := self.read(min(size - skipped, 16 * CHUNK))):
            skipped += len(data)
        return skipped

    def remaining(self) -> int | None:
        return None


class ByteWindow:
    """Reads a source forward; `pos` counts bytes from the source's start.

    The common case, a few bytes inside what is buffered, is a slice and an addition.
    """

    def __init__(self, source: Source) -> None:
        self._source = source
        self._data = b""
        self._base = 0  # position of _data[0]
        self._index = 0  # of pos in _data
        self._pin: int | None = None
        self._end = source.remaining()  # where the source ends (pos counts from 0), if known

    @property
    def pos(self) -> int:
        return self._base + self._index

    def _fill(self, size: int) -> int:
        """Buffer `size` bytes from `pos` if the source has them; how many there are."""
        ahead = len(self._data) - self._index
        if ahead >= size:
            return size
        keep = self._index if self._pin is None else self._pin - self._base
        parts = [self._data[keep:]]
        while ahead < size and (chunk := self._source.read(max(CHUNK, size - ahead))):
            parts.append(chunk)
            ahead += len(chunk)
        self._data = b"".join(parts)
        self._base += keep
        self._index -= keep
        return min(ahead, size)

    def peek(self, size: int) -> bytes:
        """Up to `size` bytes from `pos`, without moving."""
        if self._index + size > len(self._data):
            self._fill(size)
        return self._data[self._index : self._index + size]

    def take(self, size: int) -> bytes:
        """Up to `size` bytes from `pos`, moving past them."""
        index = self._index
        if index + size > len(self._data):
            self._fill(size)
            index = self._index
        data = self._data[index : index + size]
        self._index = index + len(data)
        return data

    def skip(self, size: int) -> int:
        """Move up to `size` bytes on; how many there were. Pinned bytes stay buffered."""
        ahead = len(self._data) - self._index
        if size <= ahead:
            self._index += size
            return size
        if self._pin is not None:
            count = self._fill(size)
            self._index += count
            return count
        skipped = ahead + self._source.discard(size - ahead)
        self._base += self._index + skipped
        self._data = b""
        self._index = 0
        return skipped

    def buffered(self) -> tuple[bytes, int]:
        """The buffered bytes and the index of `pos` in them, for a reader that walks them in
        place (the scanner's run of skipped elements) and then moves on with `advance`."""
        return self._data, self._index

    def advance(self, index: int) -> None:
        """Move `pos` to `index` of the bytes `buffered` returned (at most their length)."""
        self._index = index

    def room(self, limit: int | None) -> int | None:
        """Bytes left before `limit` and the end of the source, if either is known."""
        pos = self._base + self._index
        if self._end is None:
            return None if limit is None else limit - pos
        if limit is None or self._end < limit:
            return self._end - pos
        return limit - pos

    def pin(self, position: int) -> None:
        """Keep every byte from `position` (at most `pos`, still buffered) until `unpin`."""
        if not self._base <= position <= self.pos:
            raise ValueError(f"cannot pin {position}: bytes {self._base}..{self.pos} are held")
        self._pin = position

    def unpin(self) -> bytes:
        """The bytes from the pinned position up to `pos`; nothing is pinned afterwards."""
        assert self._pin is not None
        data = self._data[self._pin - self._base : self._index]
        self._pin = None
        return data
