"""Every example and test vector of the reference's §5 (the `--filepath` language), in its order.

Data sets are written to Part 10 bytes and read back with the worker's header reader, so each
value reaches the renderer as in production.
"""

import random

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from shared.hashes import dcm4che_md5, java_hash
from shared.pattern import Pattern, PatternError, RenderError
from tests.pattern_support import NOW, dataset, read_back, render

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


# -- 5.4 types -----------------------------------------------------------------------------------

SIMPSON = dataset(
    PatientID="123456789",
    PatientName="Simson^Homer",
    StudyInstanceUID="1.2.3",
    SeriesInstanceUID="1.2.3.4",
    SOPInstanceUID="1.2.3.4.5",
    InstanceNumber="2",
    SliceLocation="-1234.5",
    Rows=1234,
)


def test_upstream_date_and_time_vectors() -> None:
    assert render("{00080020,date,yyyy/MM/dd}/{00080030,time,HH}", STUDY) == "2011/10/12/09"
    shifted = "{00080020,date-P1M,yyyy/MM/dd}/{00080030,time+PT30M,HH/mm}"
    assert render(shifted, STUDY) == "2011/09/12/10/00"


@pytest.mark.parametrize(
    ("args", "expected"),
    [("3", "456789"), ("3,6", "456"), ("-3", "789"), ("-6,-3", "456")],
)
def test_upstream_slice_vectors(args: str, expected: str) -> None:
    assert render(f"{{00100020,slice,{args}}}", SIMPSON) == expected


def test_upstream_upper_vector() -> None:
    assert render("{00100010,upper}", SIMPSON) == "SIMSON^HOMER"


def test_none_is_the_plain_value() -> None:
    assert render("{00100020,none}", SIMPSON) == render("{00100020}", SIMPSON) == "123456789"


@pytest.mark.parametrize(("uid", "expected"), [("1.2.3", "02C82A3A"), ("1.2.3.4", "71668980")])
def test_hash_is_java_string_hash_code_as_eight_uppercase_hex_digits(
    uid: str, expected: str
) -> None:
    assert render("{SOPInstanceUID,hash}", dataset(SOPInstanceUID=uid)) == expected


def test_hash_counts_utf16_code_units() -> None:
    assert java_hash("\U0001f600") == f"{(0xD83D * 31 + 0xDE00) & 0xFFFFFFFF:08X}"


def test_md5_vector() -> None:
    assert render("{00080018,md5}", SIMPSON) == "08vpsu2l2shpb0kc3orpgfnhv0"


@pytest.mark.parametrize("text", ["", "a", "1.2.840.113619.2.55.3", "Jérôme", "山田"])
def test_md5_characters_0_and_13_are_always_0_and_the_last_at_most_7(text: str) -> None:
    digest = dcm4che_md5(text)
    assert len(digest) == 26
    assert set(digest) <= set("0123456789abcdefghijklmnopqrstuv")
    assert digest[0] == digest[13] == "0"
    assert digest[25] <= "7"


def test_urlencoded_is_java_url_encoder_in_utf8() -> None:
    ds = dataset(PatientID="a b~/é*._-")
    assert render("{PatientID,urlencoded}", ds) == "a+b%7E%2F%C3%A9*._-"


@pytest.mark.parametrize("kind", ["hash", "md5", "urlencoded", "date", "time"])
def test_these_types_render_null_for_a_missing_value(kind: str) -> None:
    assert render(f"{{PatientID,{kind}}}") == "null"


@pytest.mark.parametrize("kind", ["", ",none", ",upper", ",slice,1", ",slice,-2,5"])
def test_these_types_render_nothing_for_a_missing_value(kind: str) -> None:
    assert render(f"x{{PatientID{kind}}}y") == "xy"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("", "-1,234.5"),
        (",integer", "-1,234"),
        (",percent", "-123,450%"),
        (",currency", "-$1,234.50"),
        (",#", "-1234"),
        (",000", "-1234"),
        (",0.000", "-1234.500"),
    ],
)
def test_number_formats_a_decimal_string_with_message_format_styles(
    style: str, expected: str
) -> None:
    assert render(f"{{SliceLocation,number{style}}}", SIMPSON) == expected


def test_number_rounds_half_even() -> None:
    assert render("{SliceLocation,number,#}", dataset(SliceLocation="2.5")) == "2"
    assert render("{SliceLocation,number,#}", dataset(SliceLocation="3.5")) == "4"


def test_number_formats_binary_numbers() -> None:
    assert render("{Rows,number}/{Rows,number,000000}", SIMPSON) == "1,234/001234"


def test_number_gives_0_for_integer_strings_as_dcm4che_does() -> None:
    assert render("{InstanceNumber,number}/{PatientID,number,0.0}", SIMPSON) == "0/0.0"


def test_number_renders_0_for_a_missing_value() -> None:
    assert render("{SliceLocation,number}/{Rows,number,00}") == "0/00"


def test_choice_picks_the_text_for_the_value() -> None:
    spec = "0#none|1#one|1<many"
    assert [render(f"{{Rows,choice,{spec}}}", dataset(Rows=n)) for n in (0, 1, 2)] == [
        "none",
        "one",
        "many",
    ]
    assert render(f"{{SliceLocation,choice,{spec}}}", dataset(SliceLocation="1.5")) == "many"


def test_choice_treats_a_missing_value_as_0() -> None:
    assert render("{Rows,choice,-1#negative|0#zero|1#positive}") == "zero"


def test_offset_adds_to_an_integer_string() -> None:
    assert render("{00200013,offset,-1}", SIMPSON) == "1"


def test_offset_adds_to_binary_integers_with_32_bit_wrap_around() -> None:
    assert render("{Rows,offset,10}", SIMPSON) == "1244"
    assert render("{SimpleFrameList,offset,1}", dataset(SimpleFrameList=[2**31 - 1])) == str(
        -(2**31)
    )


def test_offset_counts_decimal_strings_as_0_and_a_missing_value_as_n() -> None:
    assert render("{SliceLocation,offset,5}/{Rows,offset,-7}", SIMPSON.copy()) == "5/1227"
    assert render("{InstanceNumber,offset,5}") == "5"


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns: invalid on purpose
def test_offset_on_an_integer_string_that_is_no_integer_cannot_render() -> None:
    ds = Dataset()
    ds.add_new(0x00200013, "IS", "1.5")
    pattern = Pattern.parse("{InstanceNumber,offset,1}")
    with pytest.raises(RenderError):
        pattern.render(read_back(ds, pattern), now=NOW, rng=random.Random())


def test_date_without_a_style_is_the_en_us_medium_date() -> None:
    assert render("{StudyDate,date}", STUDY) == "Oct 12, 2011"
    assert render("{StudyTime,time}", STUDY) == "9:30:00 AM"


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("short", "10/12/11"),
        ("medium", "Oct 12, 2011"),
        ("long", "October 12, 2011"),
        ("full", "Wednesday, October 12, 2011"),
    ],
)
def test_date_styles_are_the_en_us_ones(style: str, expected: str) -> None:
    assert render(f"{{StudyDate,date,{style}}}", STUDY) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("date-P1M", "2011-09-12"),
        ("date+P1Y2M3D", "2012-12-15"),
        ("dateP1W", "2011-10-19"),
        ("date-P1Y", "2010-10-12"),
    ],
)
def test_a_period_after_date_shifts_it(kind: str, expected: str) -> None:
    assert render(f"{{StudyDate,{kind},yyyy-MM-dd}}", STUDY) == expected


def test_a_month_period_clamps_to_the_last_day_of_the_month() -> None:
    assert render("{StudyDate,date+P1M,yyyy-MM-dd}", dataset(StudyDate="20110131")) == "2011-02-28"


def test_a_duration_after_time_adds_whole_seconds_only() -> None:
    assert render("{StudyTime,time+PT1.9S,HH:mm:ss}", STUDY) == "09:30:01"
    assert render("{StudyTime,time-PT1H,HH:mm}", STUDY) == "08:30"
    assert render("{StudyTime,timeP1DT1M,HH:mm}", STUDY) == "09:31"


@pytest.mark.parametrize("kind", ["date-P1M", "time+PT30M"])
def test_a_shift_on_a_missing_value_cannot_render(kind: str) -> None:
    pattern = Pattern.parse(f"{{StudyDate,{kind}}}")
    with pytest.raises(RenderError):
        pattern.render(Dataset(), now=NOW, rng=random.Random())


def test_rnd_as_a_type_with_a_tag_is_random_too() -> None:
    assert render("{PatientID,rnd}", seed=3) == render("{rnd}", seed=3)


def test_uuid_is_a_random_version_4_uuid_in_lowercase() -> None:
    text = render("{rnd,uuid}", seed=5)
    assert text == str(__import__("uuid").UUID(int=random.Random(5).getrandbits(128), version=4))
    assert len(text) == 36 and text == text.lower() and text[14] == "4"


def test_uid_is_2_25_and_the_decimal_of_a_random_uuid() -> None:
    text = render("{rnd,uid}", seed=5)
    expected = __import__("uuid").UUID(render("{rnd,uuid}", seed=5)).int
    assert text == f"2.25.{expected}"


def test_uuid_renders_null_when_a_sequence_on_its_path_is_missing() -> None:
    assert render("{ReferencedImageSequence.PatientID,uuid}") == "null"


@pytest.mark.parametrize(
    ("args", "text", "expected"),
    [
        ("3,0", "123456789", "123456789"),
        ("10", "123456789", ""),
        ("9", "123456789", ""),
        ("-20", "123456789", "123456789"),
        ("2,20", "123456789", "3456789"),
        ("5,3", "123456789", ""),
        ("-20,-15", "123456789", ""),
        ("0,-1", "123456789", "12345678"),
    ],
)
def test_slice_bounds_follow_the_reference_rules(args: str, text: str, expected: str) -> None:
    assert render(f"{{PatientID,slice,{args}}}", dataset(PatientID=text)) == expected


def test_slice_with_three_arguments_is_refused() -> None:
    with pytest.raises(PatternError):
        Pattern.parse("{PatientID,slice,1,2,3}")


# -- 5.5 MessageFormat-layer details -------------------------------------------------------------


def test_a_null_argument_prints_null() -> None:
    assert render("{PatientID,hash}/{StudyDate,date,yyyy}") == "null/null"


def test_a_placeholder_inside_a_choice_text_refers_to_argument_0() -> None:
    source = "{PatientID}/{Rows,choice,0#zero|1#rows of {0}}"
    assert render(source, dataset(PatientID="P1", Rows=3)) == "P1/rows of P1"


@pytest.mark.parametrize(
    ("source", "column"),
    [
        ("a/{}", 3),
        ("{PatientID,offset}", 19),
        ("{PatientID,offset,x}", 19),
        ("{PatientID,upperr}", 12),
        ("{PatientID,Upper}", 12),
        ("{Patient_ID}", 2),
        ("{00100020[x]}", 11),
        ("{StudyDate,date,yyyy/qq}", 22),
        ("{Rows,number,0.0.0}", 17),
        ("{Rows,choice,2#a|1#b}", 19),
        ("{StudyDate,date-1M}", 16),
        ("{StudyTime,time+P1M}", 16),
        ("{StudyDate,dateX}", 16),
    ],
)
def test_bad_patterns_are_refused_at_the_column_of_the_fault(source: str, column: int) -> None:
    with pytest.raises(PatternError) as refused:
        Pattern.parse(source)
    assert refused.value.column == column, str(refused.value)
