"""Every example and test vector of the reference's §5.4-5.5 (the `--filepath` types and the
MessageFormat layer), in its order; §5.1-5.3 are in test_pattern_spec_syntax.py.

Data sets are written to Part 10 bytes and read back with the worker's header reader, so each
value reaches the renderer as in production.
"""

import random

import pytest
from pydicom.dataset import Dataset

from pacs_ingest.shared.pattern import Pattern, PatternError, RenderError
from pacs_ingest.shared.pattern.hashes import dcm4che_md5, java_hash
from tests.pattern_support import NOW, dataset, read_back, render

STUDY = dataset(StudyDate="20111012", StudyTime="0930")


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
