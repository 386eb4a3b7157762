"""A peer cannot hold a receiver with connections that never finish their A-ASSOCIATE-RQ (issue 9):
1,000 of them are held while a well-behaved SCU stores, and each is dropped once the ARTIM timer
(--request-timeout) expires, leaving the receiver's descriptors where they were."""

import os
import resource
import selectors
import socket
import time

from benchmarks.corpus import make_corpus
from tests.conftest import Pipeline
from tests.fuzz import live_checks, streams
from tests.helpers import archive_files, wait_until
from tests.receivers import dcmtk

HALF_OPEN = 1000
# Long enough for 1,000 connects to reach the receiver on a loaded 2-core machine.
REQUEST_TIMEOUT_S = 15.0


def _half_open(port: int, count: int) -> list[tuple[socket.socket, float]]:
    """`count` connections, each having sent half an A-ASSOCIATE-RQ; with when it was sent."""
    half = streams.associate_rq()[:60]
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(half)
        held.append((sock, time.monotonic()))
    return held


def _wait_for_drops(held: list[tuple[socket.socket, float]], timeout: float) -> list[float]:
    """How long after its half RQ the receiver closed each connection."""
    selector = selectors.DefaultSelector()
    for sock, sent in held:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, sent)
    after: list[float] = []
    deadline = time.monotonic() + timeout
    while len(after) < len(held) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=1.0):
            sock = key.fileobj
            try:
                data = sock.recv(4096)  # type: ignore[union-attr]
            except ConnectionResetError:
                data = b""
            assert data == b"", f"a PDU instead of a plain close: {data[:16]!r}"
            after.append(time.monotonic() - key.data)
            selector.unregister(sock)
            sock.close()  # type: ignore[union-attr]
    selector.close()
    return after


def test_a_thousand_half_open_connections_are_dropped_after_artim_while_a_store_succeeds(
    pipeline: Pipeline, tmp_path
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4 * HALF_OPEN)), hard))
    receive = pipeline.receive(
        "--receivers", "1", "--request-timeout", str(int(REQUEST_TIMEOUT_S * 1000))
    )
    pipeline.work("--processes", "1")
    wait_until(lambda: live_checks.receiver_pids(receive.log()), 30, "the receiver")
    (pid,) = live_checks.receiver_pids(receive.log())
    first, second = make_corpus(tmp_path / "corpus", 2, size=4096)
    # A first store opens what the receiver keeps open: its queue connection, made by the
    # enqueuer thread when it pushes the first ref, which may be after the association ended.
    # Filed means pushed.
    warm = dcmtk("storescu", "-aec", "INGEST", "127.0.0.1", str(pipeline.port), str(first))
    assert warm.returncode == 0, warm.stderr
    wait_until(lambda: len(archive_files(pipeline.archive)) == 1, 30, "the first object filed")
    baseline = live_checks.open_descriptors(pid)

    held = _half_open(pipeline.port, HALF_OPEN)
    try:
        wait_until(  # all accepted and held (the kernel completes a connect before that)
            lambda: live_checks.open_descriptors(pid) >= baseline + HALF_OPEN,
            REQUEST_TIMEOUT_S / 3,
            "the receiver to hold every connection",
        )
        store = dcmtk("storescu", "-aec", "INGEST", "127.0.0.1", str(pipeline.port), str(second))
        still_held = live_checks.open_descriptors(pid) - baseline
        assert store.returncode == 0, store.stdout + store.stderr
        assert "0x0000: Success" in store.stdout + store.stderr
        assert still_held >= HALF_OPEN  # the store succeeded while every connection was held
        dropped_after = _wait_for_drops(held, REQUEST_TIMEOUT_S + 30)
    finally:
        for sock, _ in held:
            sock.close()
    assert len(dropped_after) == HALF_OPEN
    assert min(dropped_after) >= REQUEST_TIMEOUT_S - 0.5  # not before the ARTIM timeout
    wait_until(lambda: len(archive_files(pipeline.archive)) == 2, 30, "both objects filed")
    wait_until(
        lambda: live_checks.open_descriptors(pid) <= baseline,
        30,
        f"the descriptors: {baseline} before, {live_checks.open_descriptors(pid)} now, "
        f"{sorted(os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd'))}",
    )
    assert live_checks.open_descriptors(pid) == baseline
