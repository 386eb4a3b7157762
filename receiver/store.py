"""C-STORE: the data set streamed into incoming/, fsync, move to ready/, enqueue, then answer.

pynetdicom has already streamed the data set into a SpoolFile (receiver.spool_file) behind the
file meta the reference writes. Here the store is made durable, its job enqueued, and the peer
answered: Success only once the object's bytes and its ready/ entry are on disk.
"""

from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from receiver.commit import Committer
from receiver.spool_file import SpoolFile, SpoolFiles
from shared import log
from shared.spool import Spool

# DIMSE statuses (PS3.4 Annex B.2.3 and PS3.7 Annex C)
OUT_OF_RESOURCES = 0xA700
PROCESSING_FAILURE = 0x0110
ERROR_COMMENT_MAX = 64


@dataclass(frozen=True, slots=True)
class StorePolicy:
    status: int  # --status: the status of every successful store
    ignore: bool  # --ignore: answer without storing
    require_queue: bool  # --require-queue: no Success unless the job is enqueued


def failure(status: int, comment: str) -> Dataset:
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:ERROR_COMMENT_MAX]
    return rsp


class StoreHandler:
    """The EVT_C_STORE handler of one receiver process."""

    def __init__(
        self, spool: Spool, files: SpoolFiles, committer: Committer, policy: StorePolicy
    ) -> None:
        self._spool = spool
        self._files = files
        self._committer = committer
        self._policy = policy

    def __call__(self, event: Event) -> int | Dataset:
        try:
            spool_file = self._files.take(event.dataset_path)
        except AttributeError:
            return failure(PROCESSING_FAILURE, "C-STORE-RQ without a data set")
        if spool_file is None:
            return failure(PROCESSING_FAILURE, "received data set was not spooled")
        if self._policy.ignore:
            spool_file.discard()
            return self._policy.status
        facts = {
            "name": spool_file.spool_name,
            "sop_instance_uid": str(event.request.AffectedSOPInstanceUID),
            "calling_ae": event.assoc.requestor.ae_title,
            "peer": event.assoc.requestor.address,
        }
        return self._store(spool_file, facts)

    def _store(self, spool_file: SpoolFile, facts: dict[str, str]) -> int | Dataset:
        try:
            spool_file.sync()
            spool_file.close()
            self._spool.make_ready(spool_file.spool_name)
        except OSError as exc:
            spool_file.discard()
            log.error("store.spool_failed", error=str(exc), **facts)
            return failure(OUT_OF_RESOURCES, f"cannot spool: {exc.strerror or exc}")
        commit = self._committer.commit(spool_file.spool_name)
        if not commit.durable:
            log.error("store.not_durable", error=commit.error, **facts)
            return failure(OUT_OF_RESOURCES, commit.error)
        if self._policy.require_queue and not commit.enqueued:
            # Durable all the same: the recovery sweep files it once Redis is back.
            log.error("store.not_enqueued", **facts)
            return failure(OUT_OF_RESOURCES, "job queue unavailable (--require-queue)")
        log.event("store.spooled", bytes=spool_file.size, enqueued=commit.enqueued, **facts)
        return self._policy.status
