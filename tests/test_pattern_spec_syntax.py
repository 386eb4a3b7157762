"""Every example and test vector of the reference's §5.1-5.3 (the `--filepath` language: tokens,
placeholder bodies, values), in its order; §5.4-5.5 are in test_pattern_spec_types.py.

Data sets are written to Part 10 bytes and read back with the worker's header reader, so each
value reaches the renderer as in production.
"""

import random

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pacs_ingest.shared.pattern import Pattern, PatternError
from tests.pattern_support import dataset, render

STUDY = dataset(StudyDate="20111012", StudyTime="0930")


# -- 5.1 tokenising ------------------------------------------------------------------------------


def test_a_closing_brace_without_an_opening_one_is_refused_at_its_column() -> None:
    with pytest.raises(PatternError) as refused:
        Pattern.parse("ab}/{PatientID}")
    assert refused.value.column == 3
    assert "column 3" in str(refused.value)
    assert str(refused.value).endswith("\n    ^")


def test_an_unclosed_brace_silently_drops_the_rest_of_the_pattern() -> None:
    pattern = Pattern.parse("{PatientID}/x{00080020,date,yyyy")
    assert pattern.dropped == "{00080020,date,yyyy"
    assert render("{PatientID}/x{00080020,date,yyyy", dataset(PatientID="P1")) == "P1/x"


def test_inner_braces_stay_in_the_placeholder_body() -> None:
    source = "{Rows,choice,0#none|1#one {0}|2#many}"
    assert [p.body for p in Pattern.parse(source).placeholders] == [source[1:-1]]
    assert render(source, dataset(Rows=1)) == "one 1"


def test_braces_never_appear_in_the_output_from_pattern_text() -> None:
    # There is no escape: `{` always opens a placeholder.
    with pytest.raises(PatternError):
        Pattern.parse("{{PatientID}}")


def test_an_apostrophe_in_literal_text_starts_a_message_format_quote() -> None:
    assert render("O'Brien/{PatientID}", dataset(PatientID="P1")) == "OBrien/{0}"


def test_a_quoted_placeholder_prints_its_message_format_element() -> None:
    source = "{PatientID}/'{00080020,date,yyyy}'"
    assert render(source, dataset(PatientID="P1", StudyDate="20111012")) == "P1/{1,date,yyyy}"


def test_two_apostrophes_print_one() -> None:
    assert render("O''Brien/{PatientID}", dataset(PatientID="P1")) == "O'Brien/P1"


# -- 5.2 placeholder body ------------------------------------------------------------------------


def test_everything_after_the_types_comma_is_passed_through_with_its_commas() -> None:
    assert render("{Rows,number,#,##0.0}", dataset(Rows=12345)) == "12,345.0"


def test_now_is_the_clock_passed_in() -> None:
    assert render("{now,date,yyyy/MM/dd/HH/mm/ss/SSS}") == "2024/02/29/13/05/09/250"


def test_a_head_starting_with_now_is_the_clock() -> None:
    assert render("{nowadays,date,yyyy}") == "2024"


def test_rnd_is_eight_uppercase_hex_digits_from_the_random_source() -> None:
    assert render("{rnd}", seed=7) == f"{random.Random(7).getrandbits(32):08X}"


@pytest.mark.parametrize("kind", ["uuid", "uid"])
def test_rnd_takes_uuid_and_uid(kind: str) -> None:
    assert render(f"{{rnd,{kind}}}", seed=1) == render(f"{{PatientID,{kind}}}", seed=1)


@pytest.mark.parametrize("kind", ["hash", "date", "upper", "number", "rnd"])
def test_rnd_with_any_other_type_is_refused(kind: str) -> None:
    with pytest.raises(PatternError) as refused:
        Pattern.parse(f"x/{{rnd,{kind}}}")
    assert refused.value.column == 8


def test_hex_tags_and_keywords_name_the_same_attribute() -> None:
    ds = dataset(PatientID="P1")
    assert render("{00100020}", ds) == render("{PatientID}", ds) == "P1"


def test_hex_tags_of_any_length_are_accepted() -> None:
    assert render("{100020}", dataset(PatientID="P1")) == "P1"


def test_keywords_are_case_sensitive() -> None:
    with pytest.raises(PatternError):
        Pattern.parse("{patientID}")


def test_hex_tags_from_group_8000_cannot_be_written() -> None:
    with pytest.raises(PatternError) as refused:
        Pattern.parse("a/{FFFAFFFA}")
    assert refused.value.column == 4


def test_a_tag_path_enters_the_first_item_of_each_sequence() -> None:
    items = [dataset(ReferencedSOPInstanceUID="1.1"), dataset(ReferencedSOPInstanceUID="2.2")]
    ds = dataset(ReferencedImageSequence=Sequence(items))
    assert render("{00081140.00081155}", ds) == "1.1"
    assert render("{ReferencedImageSequence.ReferencedSOPInstanceUID}", ds) == "1.1"


def test_nested_sequences_are_entered_item_by_item() -> None:
    inner = dataset(CodeValue="T-A0100")
    outer = dataset(AnatomicRegionSequence=Sequence([inner]))
    ds = dataset(ReferencedImageSequence=Sequence([outer]))
    assert render("{00081140.00082218.00080100}", ds) == "T-A0100"


@pytest.mark.parametrize("kind", ["", ",hash", ",upper", ",number", ",offset,3", ",uuid", ",rnd"])
def test_a_missing_sequence_renders_null_whatever_the_type(kind: str) -> None:
    empty = dataset(ReferencedImageSequence=Sequence([]))
    not_a_sequence = dataset(PatientID="P1")
    for ds in (Dataset(), empty):
        assert render(f"{{00081140.00081155{kind}}}", ds) == "null"
    assert render(f"{{00100020.00081155{kind}}}", not_a_sequence) == "null"


def test_a_value_index_picks_one_value_of_a_multi_valued_attribute() -> None:
    ds = dataset(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    assert render("{00080008[1]}", ds) == "PRIMARY"
    assert render("{00080008}", ds) == "ORIGINAL"
    assert render("{00080008[3]}", ds) == ""


def test_private_tags_are_matched_literally() -> None:
    ds = Dataset()
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "LO", "private value")
    assert render("{00091001}", ds) == "private value"


def test_the_file_meta_group_is_not_available() -> None:
    assert render("{00020010}/{00020003,hash}", dataset(PatientID="P1")) == "/null"


def test_attributes_after_pixel_data_are_not_read() -> None:
    ds = dataset(Rows=1)
    ds.add_new(0x7FE00010, "OB", b"\0\0")
    ds.add_new(0x7FE10010, "LO", "after pixel data")
    assert render("{7FE10010}/{Rows}", ds) == "/1"


# -- 5.3 value extraction ------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns: invalid on purpose
def test_values_are_trimmed_of_spaces_and_nul_padding() -> None:
    ds = Dataset()
    ds.add_new(0x00100020, "LO", "  P1 ")
    ds.add_new(0x00080018, "UI", "1.2.3\0")
    assert render("{PatientID}|{SOPInstanceUID}", ds) == "P1|1.2.3"


def test_an_empty_or_blank_value_counts_as_missing() -> None:
    ds = dataset(PatientID="   ", OtherPatientIDs=["A", "", "C"])
    assert render("{PatientID,hash}/{OtherPatientIDs[1],hash}", ds) == "null/null"
    assert render("{PatientID}/{OtherPatientIDs[2]}", ds) == "/C"


def test_long_texts_keep_backslashes_and_leading_spaces_and_have_only_one_value() -> None:
    ds = dataset(ImageComments="  a\\b  ", StudyComments="x")
    assert render("{ImageComments}", ds) == "  a_b"  # `\` made safe: see the safety tests
    assert render("{ImageComments,urlencoded}", ds) == "++a%5Cb"
    assert render("{StudyComments[1]}", ds) == ""


def test_person_names_are_the_raw_string_of_that_value() -> None:
    assert render("{PatientName}", dataset(PatientName="Doe^John^^Dr")) == "Doe^John^^Dr"


@pytest.mark.parametrize(
    ("keyword", "vr", "value", "expected"),
    [
        ("Rows", "US", 512, "512"),
        ("TagAngleSecondAxis", "SS", -5, "-5"),
        ("SimpleFrameList", "UL", [7, 4294967295], "7"),
        ("ReferencePixelX0", "SL", -70000, "-70000"),
        ("RecommendedDisplayFrameRateInFloat", "FL", 0.1, "0.1"),
        ("ExaminedBodyThickness", "FL", 12.5, "12.5"),
        ("TableOfYBreakPoints", "FD", 1e20, "1.0E20"),
    ],
)
def test_binary_numbers_render_as_decimal(
    keyword: str, vr: str, value: object, expected: str
) -> None:
    assert render(f"{{{keyword}}}", dataset(**{keyword: value})) == expected


def test_ob_and_ow_give_the_byte_or_word_at_the_index() -> None:
    ds = Dataset()
    ds.add_new(0x00091010, "OB", b"\x05\xff")
    ds.add_new(0x00091011, "OW", b"\x01\x02\x03\x04")
    assert render("{00091010}/{00091010[1]}/{00091011[1]}", ds) == "5/255/1027"


def test_a_sequence_as_a_value_counts_as_missing() -> None:
    ds = dataset(ReferencedImageSequence=Sequence([dataset(PatientID="x")]))
    assert render("{ReferencedImageSequence}|{ReferencedImageSequence,hash}", ds) == "|null"
