"""System-call faults injected with strace into a running receiver or worker.

For each of write, fsync, rename (and link) and openat, in each role, every store the sender was
told succeeded must end up filed exactly once (or in failed/ with a reason) once the fault is gone;
and the fault must really have happened (strace logs each injection).
"""

import signal
import subprocess
from contextlib import ExitStack
from pathlib import Path

import pytest
from pynetdicom import AE

from benchmarks.corpus import make_corpus
from pacs_ingest.shared import part10
from tests.conftest import Pipeline
from tests.helpers import (
    archive_files,
    started_processes,
    tmpfs,
    traced,
    wait_until,
    waiting_objects,
)

SYSCALLS = {
    "write": "write,pwrite64,writev",
    "fsync": "fsync,fdatasync",
    "rename": "rename,renameat,renameat2,link,linkat",  # moves into place (keep-both links)
    "openat": "open,openat",
}
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"


def _pid_of(pipeline: Pipeline, process: str) -> int:
    pids = [pid for name, pid in started_processes(pipeline.commands[0].log()) if name == process]
    assert pids, f"no {process} in the log"
    return pids[0]


def _send(paths: list[Path], port: int) -> dict[Path, int]:
    """One C-STORE per file; a new association whenever the last one was lost."""
    statuses: dict[Path, int] = {}
    assoc = None
    for path in paths:
        if assoc is None or not assoc.is_established:
            ae = AE(ae_title="FAULTS")
            ae.add_requested_context(CT_IMAGE_STORAGE, EXPLICIT_VR_LITTLE_ENDIAN)
            assoc = ae.associate("127.0.0.1", port, ae_title="INGEST")
        rsp = assoc.send_c_store(path) if assoc.is_established else None
        statuses[path] = int(rsp.Status) if rsp is not None and "Status" in rsp else -1
    if assoc is not None and assoc.is_established:
        assoc.release()
    return statuses


def _uid(path: Path) -> str:
    with open(path, "rb") as fp:
        return part10.read_file_meta(fp).media_storage_sop_instance_uid


@pytest.mark.parametrize("syscall", list(SYSCALLS))
@pytest.mark.parametrize("role", ["receiver", "worker"])
def test_an_injected_fault_never_loses_an_acknowledged_object(
    pipeline: Pipeline, role: str, syscall: str
) -> None:
    objects = make_corpus(pipeline.tmp_path / "corpus", 13, size=50_000)
    warm_up, objects = objects[:3], objects[3:]
    with ExitStack() as stack:
        if role == "worker":  # a separate file system, so the worker copies, writes and fsyncs
            stack.enter_context(tmpfs(pipeline.archive, "50m"))
        pipeline.up("--receivers", "1", "--workers", "1", sweep_interval=1)
        assert set(_send(warm_up, pipeline.port).values()) == {0}
        wait_until(lambda: len(archive_files(pipeline.archive)) == 3, 30, "warm-up filed")

        trace_log = pipeline.tmp_path / "strace.log"
        calls = SYSCALLS[syscall]
        target = _pid_of(pipeline, f"{role}-0")
        strace = subprocess.Popen(
            [
                "strace",
                "-f",
                "-o",
                str(trace_log),
                "-p",
                str(target),
                "-e",
                f"trace={calls}",
                "-e",
                f"inject={calls}:error=EIO",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        stack.callback(lambda: strace.poll() is None and strace.kill())
        wait_until(lambda: traced([target]), 10, "strace to attach to every thread")
        statuses = _send(objects, pipeline.port)
        if role == "receiver":
            # Every write, flush, move or open of the spool fails: no store may succeed.
            assert all(status != 0 for status in statuses.values()), statuses
        else:
            assert set(statuses.values()) == {0}
            wait_until(
                lambda: "INJECTED" in trace_log.read_text(), 30, "the worker to meet the fault"
            )
            assert len(archive_files(pipeline.archive)) == 3, "filed despite the fault"
        strace.send_signal(signal.SIGINT)  # detach; the process carries on
        strace.wait(10)
        assert "INJECTED" in trace_log.read_text(), "the fault never happened"

        acknowledged = {_uid(p) for p, status in statuses.items() if status == 0}
        wait_until(lambda: not waiting_objects(pipeline.spool), 90, "the spool drained")
        filed = [_uid(p) for p in archive_files(pipeline.archive)]
        assert len(filed) == len(set(filed)), "an object was filed twice"
        assert acknowledged <= set(filed), "an acknowledged object was lost"
        assert not any((pipeline.spool / "failed").iterdir()), "a passing fault quarantined"
        assert not [p for p in (pipeline.spool / "incoming").rglob("*") if p.is_file()]
