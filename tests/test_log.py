"""Logs: JSON lines when stderr is a file or pipe, readable lines on a terminal; what operators
need from each association and each overwrite, at INFO."""

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import free_port
from tests.conftest import Pipeline
from tests.helpers import (
    ROOT,
    corpus_file,
    pynetdicom_send,
    wait_for_port,
    wait_until,
    waiting_objects,
)

ISO_UTC_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SOP_INSTANCE_UID = "1.2.826.0.1.3680043.8.498.77"


def _json_lines(text: str) -> list[dict]:
    """Every line as one JSON object: a line that is not one fails the test."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _two_versions(folder: Path) -> list[Path]:
    def same_uid(ds, index: int) -> None:
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = SOP_INSTANCE_UID
        ds.ImageComments = f"version {index}"

    return make_corpus(folder, 2, size=5_000, customise=same_uid)


def _echo_then_abort(port: int) -> None:
    ae = AE(ae_title="ABORTER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="INGEST")
    assert assoc.is_established
    assoc.send_c_echo()
    assoc.abort()


def _idle_until_aborted(port: int) -> None:
    ae = AE(ae_title="IDLER")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="INGEST")
    assert assoc.is_established
    wait_until(lambda: assoc.is_aborted, 10, "the receiver to abort the idle association")


def test_json_lines_carry_iso_times_the_association_facts_and_overwrites(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    first, second = _two_versions(tmp_path / "versions")
    up = pipeline.up("--duplicates", "overwrite", "--idle-timeout", "1000")
    for source in (first, second):
        assert pynetdicom_send([corpus_file(source)], pipeline.port, "INGEST") == {source: 0}
        wait_until(lambda: not waiting_objects(pipeline.spool), 30, "filing")
    _echo_then_abort(pipeline.port)
    _idle_until_aborted(pipeline.port)
    wait_until(
        lambda: all(f'"association.{end}"' in up.log() for end in ("aborted_by_peer", "aborted")),
        10,
        "both aborts' log lines",
    )

    lines = _json_lines(up.log())
    assert all(ISO_UTC_MS.fullmatch(line["ts"]) for line in lines)
    by_event: dict[str, list[dict]] = {}
    for line in lines:
        by_event.setdefault(line["event"], []).append(line)
    for name in (
        "association.accepted",
        "association.released",
        "association.aborted_by_peer",
        "association.aborted",
    ):
        assert all(line["level"] == "info" for line in by_event[name]), name
    released = by_event["association.released"]
    assert [(r["calling_ae"], r["called_ae"], r["objects"]) for r in released] == [
        ("PYNETDICOM", "INGEST", 1),
        ("PYNETDICOM", "INGEST", 1),
    ]
    assert all(r["peer"] == "127.0.0.1" and r["bytes"] > 5_000 for r in released)
    (aborted,) = by_event["association.aborted_by_peer"]
    assert (aborted["calling_ae"], aborted["called_ae"], aborted["objects"]) == (
        "ABORTER",
        "INGEST",
        0,
    )
    (ours,) = by_event["association.aborted"]
    assert (ours["calling_ae"], ours["called_ae"], ours["peer"]) == ("IDLER", "INGEST", "127.0.0.1")
    (why,) = by_event["association.abort"]
    assert why["level"] == "warning" and "--idle-timeout" in why["why"], why
    assert len(by_event["association.accepted"]) == 4
    (overwritten,) = by_event["ingest.overwritten"]
    assert overwritten["target"] == str(pipeline.archive / SOP_INSTANCE_UID)
    assert [line["target"] for line in by_event["ingest.filed"]] == [overwritten["target"]]


def _read_all(fd: int, into: list[bytes]) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: every writer closed the terminal
            return
        if not chunk:
            return
        into.append(chunk)


def test_a_terminal_gets_readable_lines(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "pacs_ingest", "receive", "-b", f"INGEST:{port}"),
            *("--spool-dir", str(tmp_path / "spool"), "--directory", str(tmp_path / "archive")),
            *("--redis-url", redis_url, "--receivers", "1"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=ROOT,
        start_new_session=True,
    )
    os.close(terminal)
    output: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(controller, output), daemon=True)
    reader.start()
    try:
        wait_for_port(port)
        echo = subprocess.run(
            ["echoscu", "-aet", "ECHOER", "-aec", "INGEST", "127.0.0.1", str(port)]
        )
        assert echo.returncode == 0
        wait_until(lambda: b"association.released" in b"".join(output), 10, "the release line")
    finally:
        process.terminate()
        process.wait(20)
        reader.join(5)
        os.close(controller)
    text = b"".join(output).decode()
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and not any(line.lstrip().startswith("{") for line in lines), text
    accepted = next(line for line in lines if " association.accepted " in line)
    assert re.match(
        ISO_UTC_MS.pattern + r" INFO +association\.accepted calling_ae=ECHOER called_ae=INGEST "
        r"peer=127\.0\.0\.1 ",
        accepted,
    ), accepted
    released = next(line for line in lines if " association.released " in line)
    assert "objects=0 bytes=0" in released and "role=receiver" in released, released
