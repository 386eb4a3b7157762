"""The file pynetdicom streams each received data set into: our spool part file.

In chunked mode pynetdicom creates a NamedTemporaryFile per C-STORE and writes a preamble, a
minimal file meta of its own, then every data fragment as it arrives. We give it a SpoolFile
instead (the one process-wide hook, installed at receiver start). A SpoolFile:

- lives in this process's incoming/ folder, so it is on the spool's file system and can be
  renamed into ready/ (never a copy, never TMPDIR);
- replaces pynetdicom's file meta with the one the reference writes (the peer's implementation
  UID and version name, the Calling AE title as Source AE), so the part file is the final file;
- never raises on write: a full or failing disk is recorded, the file truncated to free the space,
  and the rest of the data set read and dropped, so the store can end in a proper 0xA700 status
  instead of pynetdicom aborting the association.
"""

import contextlib
import os
import threading
from typing import Any

from pynetdicom import dimse_messages

from shared import part10
from shared.spool import Spool, new_name


class SpoolFile:
    """Write-only, file-like enough for pynetdicom's chunked receive."""

    def __init__(self, spool: Spool, assoc: Any) -> None:
        self.spool_name = new_name()
        self.path = spool.part_path(self.spool_name)
        self.name = str(self.path)  # pynetdicom reads .name
        self.file = self  # pynetdicom calls .file.flush() after each fragment
        self.assoc = assoc
        self.error: OSError | None = None
        self.size = 0
        self._head = bytearray()  # pynetdicom's preamble and meta, until complete
        self._fd: int | None = None
        try:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            self.error = exc

    def write(self, data: bytes) -> int:
        if self.error is None:
            try:
                if self._head is not None:
                    self._take_head(data)
                else:
                    self._write_all(data)
            except OSError as exc:
                self._fail(exc)
        return len(data)

    def _take_head(self, data: bytes) -> None:
        self._head += data
        if len(self._head) < 144:
            return
        start = part10.dataset_offset(bytes(self._head[:144]))
        if len(self._head) < start:
            return
        head, self._head = bytes(self._head), None
        meta = part10.parse_file_meta(head[:start])
        requestor = self.assoc.requestor
        self._write_all(
            part10.encode_header(
                sop_class_uid=meta.media_storage_sop_class_uid,
                sop_instance_uid=meta.media_storage_sop_instance_uid,
                transfer_syntax_uid=meta.transfer_syntax_uid,
                implementation_class_uid=str(requestor.implementation_class_uid or ""),
                implementation_version_name=requestor.implementation_version_name or "",
                source_ae_title=requestor.ae_title,
            )
        )
        self._write_all(head[start:])

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self.size += written

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        if self._fd is not None:
            with contextlib.suppress(OSError):  # give the space back to the stores still arriving
                os.ftruncate(self._fd, 0)

    def flush(self) -> None:
        """Nothing to flush: writes go straight to the file; `sync` makes them durable."""

    def sync(self) -> None:
        """fsync the data; raises the first write error, if any."""
        if self.error is not None:
            raise self.error
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class SpoolFiles:
    """Creates the SpoolFile of each C-STORE and finds it again by path or by association."""

    def __init__(self, spool: Spool) -> None:
        self._spool = spool
        self._open: dict[str, SpoolFile] = {}
        self._lock = threading.Lock()

    def install(self) -> None:
        """Make pynetdicom's chunked receive write SpoolFiles (process-wide, set once)."""
        dimse_messages.NamedTemporaryFile = self._create

    def _create(self, **_: Any) -> SpoolFile:
        # pynetdicom calls this on the association's DUL thread, which knows its association.
        spool_file = SpoolFile(self._spool, getattr(threading.current_thread(), "assoc", None))
        with self._lock:
            self._open[spool_file.name] = spool_file
        return spool_file

    def take(self, path: os.PathLike | str) -> SpoolFile | None:
        """The SpoolFile written for `path`; the caller now owns it."""
        with self._lock:
            return self._open.pop(str(path), None)

    def discard_unfinished(self, assoc: Any) -> int:
        """Remove the files of `assoc` no handler took: the peer left in mid-object."""
        with self._lock:
            mine = [f for f in self._open.values() if f.assoc is assoc]
            for spool_file in mine:
                del self._open[spool_file.name]
        for spool_file in mine:
            spool_file.discard()
        return len(mine)
