"""Back-pressure: while the spool is nearly full or the backlog too long, new associations are
rejected as transient, and accepted again once that passes."""

from pynetdicom import AE

from benchmarks.corpus import make_corpus
from tests.conftest import Pipeline
from tests.helpers import tmpfs, wait_until
from tests.receivers import raw_request, send_raw

VERIFICATION = "1.2.840.10008.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
REJECTED_TRANSIENT, SOURCE_PRESENTATION, TEMPORARY_CONGESTION = 2, 3, 1


def _associate(port: int):
    ae = AE(ae_title="PRESSED")
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(CT_IMAGE_STORAGE, "1.2.840.10008.1.2.1")
    return ae.associate("127.0.0.1", port, ae_title="INGEST")


def _rejection(port: int) -> tuple[int, int, int] | None:
    """The A-ASSOCIATE-RJ (result, source, reason) a new association gets, or None if accepted.

    A raw request, not pynetdicom: its requestor misreads an RJ that arrives within a
    millisecond ("invalid A-ASSOCIATE response") about once in a hundred tries."""
    answer = send_raw(port, raw_request(port), wait_for_close=False)
    return None if answer.pdu[:1] == b"\x02" else answer.rj


def test_a_long_backlog_refuses_new_associations_until_it_is_filed(pipeline: Pipeline) -> None:
    objects = make_corpus(pipeline.tmp_path / "corpus", 6, size=4096)
    pipeline.receive("--max-backlog", "4")  # no workers: the backlog only grows
    assoc = _associate(pipeline.port)
    assert [int(assoc.send_c_store(p).Status) for p in objects] == [0] * 6
    assoc.release()
    wait_until(lambda: _rejection(pipeline.port) is not None, 10, "the backlog to be noticed")
    assert _rejection(pipeline.port) == (
        REJECTED_TRANSIENT,
        SOURCE_PRESENTATION,
        TEMPORARY_CONGESTION,
    )
    pipeline.work()
    wait_until(lambda: _rejection(pipeline.port) is None, 30, "associations accepted again")


def test_a_nearly_full_spool_refuses_new_associations(pipeline: Pipeline) -> None:
    with tmpfs(pipeline.spool, "2m"):
        pipeline.receive("--min-free-space", "1M")
        assert _rejection(pipeline.port) is None
        (pipeline.spool / "ballast").write_bytes(b"\0" * (1536 << 10))
        wait_until(lambda: _rejection(pipeline.port) is not None, 10, "the full spool noticed")
        assert _rejection(pipeline.port) == (
            REJECTED_TRANSIENT,
            SOURCE_PRESENTATION,
            TEMPORARY_CONGESTION,
        )
        (pipeline.spool / "ballast").unlink()
        wait_until(lambda: _rejection(pipeline.port) is None, 10, "associations accepted again")
