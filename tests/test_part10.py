"""The file meta we write reads back with pydicom and with our own reader."""

import io

import pytest
from pydicom.filereader import read_file_meta_info

from pacs_ingest.shared import part10

HEADER_FACTS = dict(
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    sop_instance_uid="1.2.3.4.5",
    transfer_syntax_uid="1.2.840.10008.1.2.1",
    implementation_class_uid="1.2.276.0.7230010.3.0.3.6.7",
    implementation_version_name="OFFIS_DCMTK_367",
    source_ae_title="MODALITY",
)


def test_pydicom_reads_the_header_we_write(tmp_path) -> None:
    path = tmp_path / "object.dcm"
    path.write_bytes(part10.encode_header(**HEADER_FACTS))
    meta = read_file_meta_info(path)
    assert meta.MediaStorageSOPClassUID == HEADER_FACTS["sop_class_uid"]
    assert meta.MediaStorageSOPInstanceUID == HEADER_FACTS["sop_instance_uid"]
    assert meta.TransferSyntaxUID == HEADER_FACTS["transfer_syntax_uid"]
    assert meta.ImplementationClassUID == HEADER_FACTS["implementation_class_uid"]
    assert meta.ImplementationVersionName == HEADER_FACTS["implementation_version_name"]
    assert meta.SourceApplicationEntityTitle == HEADER_FACTS["source_ae_title"]
    assert meta.FileMetaInformationVersion == b"\x00\x01"


def test_our_reader_finds_the_facts_and_the_start_of_the_data_set() -> None:
    header = part10.encode_header(**HEADER_FACTS)
    fp = io.BytesIO(header + b"DATASET")
    meta = part10.read_file_meta(fp)
    assert meta.media_storage_sop_instance_uid == "1.2.3.4.5"  # odd length: NUL padded
    assert meta.source_application_entity_title == "MODALITY"
    assert meta.dataset_offset == len(header)
    assert fp.read() == b"DATASET"


def test_a_peer_without_version_name_gets_no_empty_element() -> None:
    header = part10.encode_header(**{**HEADER_FACTS, "implementation_version_name": ""})
    assert b"\x02\x00\x13\x00" not in header
    assert part10.read_file_meta(io.BytesIO(header)).implementation_version_name == ""


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 128 + b"DICX" + b"\x00" * 20,
        b"\x00" * 128 + b"DICM" + b"\x02\x00\x01\x00OB" + b"\x00" * 10,
    ],
)
def test_a_file_without_a_proper_header_is_refused(data: bytes) -> None:
    with pytest.raises(part10.FileMetaError):
        part10.read_file_meta(io.BytesIO(data))
