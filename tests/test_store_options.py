"""Options that shape what a sender sees of each C-STORE and of the port: delays measured from the
SCU, the status it gets back, the SOP classes it may send, where the receiver listens."""

import subprocess
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pynetdicom import _config, evt
from pynetdicom.pdu import P_DATA_TF

from tests.receivers import (
    CT_IMAGE_STORAGE,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    VERIFICATION,
    Receiver,
    Receivers,
    associate,
    dcmtk,
    raw_request,
    send_raw,
)

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
WARNING_COERCION = 0xB000


def small_ct() -> Dataset:
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    return ds


def large_ct(megabytes: int) -> Dataset:
    """A CT whose pixel data alone is far larger than any socket buffer."""
    ds = small_ct()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = 1024, megabytes * 512
    ds.PixelData = bytes(megabytes * 1024 * 1024)
    return ds


@pytest.fixture(scope="module")
def paced(receivers: Receivers) -> Receiver:
    return receivers.start(
        "--receive-delay",
        "0",
        "600",
        "--response-delay",
        "300",
        "-5",
        "--status",
        "B000H",
        "--idle-timeout",
        "400",
        "--sorcv-buffer",
        "16384",
        "--ignore",
    )


def _timed_store(assoc, ds: Dataset) -> tuple[float, int]:
    start = time.monotonic()
    status = assoc.send_c_store(ds).Status
    return time.monotonic() - start, status


class TestDelays:
    def test_delays_cycle_per_association_and_c_echo_is_not_delayed(
        self, paced: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", False)
        for _association in range(2):
            assoc = associate(
                paced.port,
                [
                    (CT_IMAGE_STORAGE, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
                    (VERIFICATION, [IMPLICIT_VR_LE]),
                ],
            )
            try:
                first = _timed_store(assoc, small_ct())
                echo_start = time.monotonic()
                assert assoc.send_c_echo().Status == 0x0000  # no --status for C-ECHO
                echo = time.monotonic() - echo_start
                second = _timed_store(assoc, small_ct())
                third = _timed_store(assoc, small_ct())
                # k=1: response 300; k=2: receive 600, response -5 (none); k=3: response 300.
                # The idle timeout (400) does not cut the 600 ms receive delay.
                assert [status for _, status in (first, second, third)] == [WARNING_COERCION] * 3
                assert 0.3 <= first[0] < 0.8
                assert 0.6 <= second[0] < 1.1
                assert 0.3 <= third[0] < 0.8
                assert echo < 0.25
            finally:
                assoc.release()
        assert paced.files() == []  # --ignore: answered with --status, nothing stored

    def test_the_receive_delay_holds_the_data_set_back_and_the_response_delay_the_answer(
        self, paced: Receiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", False)
        sent: list[tuple[float, bool]] = []  # (when, is the last fragment) of each data fragment

        def on_sent(event: evt.Event) -> None:
            if isinstance(event.pdu, P_DATA_TF):
                for item in event.pdu.presentation_data_value_items:
                    header = item.presentation_data_value[0]
                    if not header & 0x01:
                        sent.append((time.monotonic(), bool(header & 0x02)))

        assoc = associate(paced.port, [(CT_IMAGE_STORAGE, [EXPLICIT_VR_LE])])
        assoc.bind(evt.EVT_PDU_SENT, on_sent)
        try:
            timings = []
            for _ in range(2):
                sent.clear()
                status = assoc.send_c_store(large_ct(16)).Status
                answered = time.monotonic()
                assert status == WARNING_COERCION
                timings.append((sent[-1][0] - sent[0][0], answered - sent[-1][0]))
            (_, answer_after_data_1), (pushing_2, answer_after_data_2) = timings
            assert answer_after_data_1 >= 0.3  # k=1: response delay after all data arrived
            assert pushing_2 >= 0.6  # k=2: the sender could not get its data out for 600 ms
            assert answer_after_data_2 < 0.6  # k=2: no response delay, none after the data
        finally:
            assoc.release()


def _write(path: Path, text: str) -> str:
    path.write_text(text, encoding="iso-8859-1")
    return str(path)


class TestSopClasses:
    def test_a_sop_classes_file_limits_classes_and_transfer_syntaxes(
        self, receivers: Receivers, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        listing = _write(
            tmp_path_factory.mktemp("sop") / "classes.properties",
            "# only CT, implicit VR\nCTImageStorage = ImplicitVRLittleEndian\n"
            "1.2.840.10008.1.1:\\\n    1.2.840.10008.1.2\n",
        )
        receiver = receivers.start("--sop-classes", listing)
        request = raw_request(
            receiver.port,
            contexts=[
                (CT_IMAGE_STORAGE, [EXPLICIT_VR_LE]),
                (CT_IMAGE_STORAGE, [EXPLICIT_VR_LE, IMPLICIT_VR_LE]),
                (MR_IMAGE_STORAGE, [IMPLICIT_VR_LE]),
                (VERIFICATION, [IMPLICIT_VR_LE]),
            ],
        )
        answer = send_raw(receiver.port, request, wait_for_close=False)
        assert answer.results == {1: 4, 3: 0, 5: 3, 7: 0}

    def test_accept_unknown_takes_any_class_with_any_transfer_syntax(
        self, receivers: Receivers
    ) -> None:
        receiver = receivers.start("--accept-unknown", "--sop-classes", "/nonexistent")
        private = "1.2.826.0.1.3680043.2.1125.1"
        request = raw_request(
            receiver.port,
            contexts=[(private, ["1.2.826.0.1.3680043.2.1125.7", EXPLICIT_VR_LE])],
        )
        assert send_raw(receiver.port, request, wait_for_close=False).results == {1: 0}


def _listening_address(port: int) -> str:
    output = subprocess.run(
        ["ss", "-ltnH", f"( sport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return output.split()[3].rsplit(":", 1)[0]


class TestBind:
    def test_without_an_ae_title_any_called_ae_is_accepted_on_every_address(
        self, receivers: Receivers
    ) -> None:
        receiver = receivers.start(bind="{port}")
        run = dcmtk("echoscu", "-aec", "WHOEVER", "127.0.0.1", str(receiver.port))
        assert run.returncode == 0, run.stderr
        assert _listening_address(receiver.port) in ("0.0.0.0", "*")

    def test_an_empty_host_after_the_ae_title_listens_on_loopback_only(
        self, receivers: Receivers
    ) -> None:
        receiver = receivers.start(bind="INGEST@:{port}")
        assert _listening_address(receiver.port) == "127.0.0.1"
        run = dcmtk("echoscu", "-aec", "WHOEVER", "127.0.0.1", str(receiver.port))
        assert "Called AE Title Not Recognized" in run.stdout + run.stderr
