"""C-STORE: stream to incoming/, fsync, move to ready/, enqueue, then answer.

pynetdicom (in chunked mode) has already written the data set to a temporary file in this
process's incoming/ folder, behind a minimal file meta of its own. We write the spool file with the
file meta the reference writes (peer's implementation UID and version, Calling AE as Source AE),
copy the data set bytes in the kernel (copy_file_range: no decoding, no buffer in Python), fsync,
and move it into ready/. Only once ready/ is flushed do we answer Success.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from receiver.commit import Committer
from shared import log, part10
from shared.spool import Spool, new_name

# DIMSE statuses (PS3.4 Annex B.2 and PS3.7 Annex C)
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110
ERROR_COMMENT_MAX = 64
_COPY_CHUNK = 1 << 30


@dataclass(frozen=True, slots=True)
class StorePolicy:
    status: int  # --status: the status of every successful store
    ignore: bool  # --ignore: answer without storing


def failure(status: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:ERROR_COMMENT_MAX]
    return rsp


def _write_part(part: Path, header: bytes, received: Path) -> int:
    """Write `header` plus the data set from pynetdicom's file `received`; fsync; return size."""
    with open(received, "rb") as source:
        offset = part10.dataset_offset(source.read(144))
        remaining = os.fstat(source.fileno()).st_size - offset
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, header)
            while remaining > 0:
                copied = os.copy_file_range(
                    source.fileno(), fd, min(remaining, _COPY_CHUNK), offset
                )
                if copied == 0:
                    raise OSError("received data set shrank while it was copied")
                offset += copied
                remaining -= copied
            os.fsync(fd)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)


class StoreHandler:
    """The EVT_C_STORE handler of one receiver process."""

    def __init__(self, spool: Spool, committer: Committer, policy: StorePolicy) -> None:
        self._spool = spool
        self._committer = committer
        self._policy = policy

    def __call__(self, event: Event) -> int | Dataset:
        if self._policy.ignore:
            return self._policy.status
        request = event.request
        requestor = event.assoc.requestor
        name = new_name()
        facts = {
            "name": name,
            "sop_instance_uid": str(request.AffectedSOPInstanceUID),
            "calling_ae": requestor.ae_title,
            "peer": requestor.address,
        }
        header = part10.encode_header(
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            transfer_syntax_uid=str(event.context.transfer_syntax),
            implementation_class_uid=str(requestor.implementation_class_uid),
            implementation_version_name=requestor.implementation_version_name or "",
            source_ae_title=requestor.ae_title,
        )
        part = self._spool.part_path(name)
        try:
            size = _write_part(part, header, event.dataset_path)
            self._spool.make_ready(name)
        except OSError as exc:
            part.unlink(missing_ok=True)
            log.error("store.spool_failed", error=str(exc), **facts)
            return failure(OUT_OF_RESOURCES, f"cannot spool: {exc.strerror or exc}")
        except part10.FileMetaError as exc:
            part.unlink(missing_ok=True)
            log.error("store.unreadable", error=str(exc), **facts)
            return failure(PROCESSING_FAILURE, f"cannot read received data: {exc}")
        commit = self._committer.commit(name)
        if not commit.durable:
            log.error("store.not_durable", error=commit.error, **facts)
            return failure(OUT_OF_RESOURCES, commit.error)
        log.event("store.spooled", bytes=size, enqueued=commit.enqueued, **facts)
        return self._policy.status
