"""One C-STORE's part file: the file meta the reference writes, then the data set bytes exactly
as they arrive, straight from the PDVs that carry them.

The PDVs' bytes are gathered (as slices of the chunks they arrived in, never copied) and written
with one writev per _GATHER_BYTES, and once the data set is complete (`finish`): a small object
takes one system call, file meta included, and a large one a few rather than one per PDV. Each
write's bytes start on their way to the disk at once, so that the fsync that makes the file
durable, on another thread a little later, finds them written or nearly (and a large object does
not pile up dirty pages until then).

The part file lives in this process's incoming/ folder, on the spool's file system, so it becomes
the final file by a rename (never a copy, never TMPDIR). A write that fails (disk full, I/O error)
is recorded, the file is truncated to give the space back to the stores still arriving, and the
rest of the data set is read and dropped, so the store ends in 0xA700 with an Error Comment rather
than a broken association.
"""

import contextlib
import os
from dataclasses import dataclass

from pacs_ingest.shared import part10
from pacs_ingest.shared.durable import start_writeback
from pacs_ingest.shared.modes import open_new
from pacs_ingest.shared.spool import ReadyObject, Spool, new_name

_GATHER_BYTES = 128 * 1024  # what a part file holds back at most
_GATHER_SLICES = 512  # below the kernel's IOV_MAX (1024) slices per writev


@dataclass(frozen=True, slots=True)
class Origin:
    """What the file meta says about where an object came from (reference §4 step 5)."""

    implementation_class_uid: str  # the peer's, from its A-ASSOCIATE-RQ
    implementation_version_name: str
    calling_ae_title: str


class PartFile:
    """incoming/<host>.<pid>/<name>.part, written as the data set arrives."""

    def __init__(
        self,
        spool: Spool,
        *,
        sop_class_uid: str,
        sop_instance_uid: str,
        transfer_syntax_uid: str,
        origin: Origin,
    ) -> None:
        self.name = new_name()
        self.path = spool.part_path(self.name)
        self.size = 0  # data set bytes received
        self.calling_ae_title = origin.calling_ae_title
        self.received_at = 0.0  # time.monotonic() when the data set was complete
        self.error: OSError | None = None
        self._fd: int | None = None
        header = part10.encode_header(
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            transfer_syntax_uid=transfer_syntax_uid,
            implementation_class_uid=origin.implementation_class_uid,
            implementation_version_name=origin.implementation_version_name,
            source_ae_title=origin.calling_ae_title,
        )
        self._header_size = len(header)
        self._gathered: list[bytes | memoryview] = [header]  # not written yet, in order
        self._gathered_size = len(header)
        self._written = 0  # bytes written to the file, file meta included
        try:
            self._fd = open_new(self.path, spool.modes)
        except OSError as exc:
            self._fail(exc)

    def write(self, data: memoryview) -> None:
        """Append data set bytes (a slice of a chunk that is never changed); after a failed
        write, drop them."""
        self.size += len(data)
        if self.error is None:
            self._gathered.append(data)
            self._gathered_size += len(data)
            if self._gathered_size >= _GATHER_BYTES or len(self._gathered) >= _GATHER_SLICES:
                self._write_gathered()

    def finish(self) -> None:
        """The data set is complete: write what is gathered (`error` says if that failed)."""
        if self.error is None and self._gathered:
            self._write_gathered()

    def _write_gathered(self) -> None:
        gathered, size = self._gathered, self._gathered_size
        self._gathered, self._gathered_size = [], 0
        fd = self._fd
        assert fd is not None
        try:
            written = os.writev(fd, gathered)
            if written < size:  # a short write: the disk is full, say
                rest = memoryview(b"".join(gathered))[written:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
        except OSError as exc:
            self._fail(exc)
            return
        start_writeback(fd, self._written, size)
        self._written += size

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        self._gathered, self._gathered_size = [], 0
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)

    def make_durable(self, spool: Spool, lane: str, *, now: float) -> ReadyObject:
        """fsync, close and move into the current bucket of `lane` (run off the event loop:
        fsync blocks); what it is in ready/ (its ref, and the mtime and size the spool's counts
        know it by, shared.spool_counts). Raises the first write error, if any; the caller then
        discards the file. The caller flushes the bucket (Spool.sync_ready) for the group.
        `now` is a time.time() reading."""
        assert not self._gathered, "finish() first"
        if self.error is not None:
            raise self.error
        assert self._fd is not None
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        # `now` stands for the mtime: the last byte was written just before.
        ready = spool.make_ready(self.name, lane, now=now)
        return ReadyObject(ready, now, self._header_size + self.size)

    def discard(self) -> None:
        """Close and remove the part file: the store failed, or its sender left mid-object."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
