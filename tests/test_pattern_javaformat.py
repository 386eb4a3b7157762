"""The java.text behaviour dcm4che patterns rely on: DecimalFormat, SimpleDateFormat, ChoiceFormat
and MessageFormat in the en_US locale, as Java's documentation and JDK 17 define them."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from pacs_ingest.shared.pattern.java.date import Period, SimpleDateFormat, parse_duration_seconds
from pacs_ingest.shared.pattern.java.message import ChoiceFormat, MessageFormat
from pacs_ingest.shared.pattern.java.number import DecimalFormat
from pacs_ingest.shared.pattern.java.text import (
    FormatArgumentError,
    FormatSyntaxError,
    parse_double,
)

OCT_12 = datetime(2011, 10, 12, 9, 30, 5, 7000)


@pytest.mark.parametrize(
    ("pattern", "number", "expected"),
    [
        ("#,##0.###", 1234.5, "1,234.5"),
        ("#,##0.###", 1234.56789, "1,234.568"),
        ("#", 0.0, "0"),
        ("000", 7, "007"),
        ("000.000", 89.008, "089.008"),
        ("0.", 89.008, "89."),
        ("000,000.00", 98765.432, "098,765.43"),
        ("#,##,###", 1234567, "1,234,567"),
        ("#.##", 0.456, "0.46"),  # with no '0' at all, the digit before the point is one
        ("#.00", 0.2677, ".27"),
        (".##", 1, "1.0"),
        ("#.###", 1.1045, "1.105"),
        ("#.###", 0.1045, "0.104"),  # 0.1045 is just below the tie in binary
        ("0.00", 0.125, "0.12"),  # an exact tie rounds to even
        ("0.00", 0.135, "0.14"),
        ("0", -0.1, "-0"),  # Java keeps the sign of a value that rounds to zero
        ("#,##0%", 0.07, "7%"),  # multiplied as a double: 7.000000000000001
        ("#\u2030", 0.5, "500\u2030"),
        ("\u00a4#,##0.00", -1234.5, "-$1,234.50"),
        ("\u00a4\u00a4 0", 3, "USD 3"),
        ("#;(#)", -5, "(5)"),
        ("#;(#)", 5, "5"),
        ("'#'0", 5, "#5"),
        ("0 o''clock", 5, "5 o'clock"),
        ("'it''s' 0", 5, "it's 5"),
        ("0.###E0", 1234, "1.234E3"),
        ("00.###E0", 0.00123, "12.3E-4"),
        ("0.0E00", 0, "0.0E00"),
        ("0.00E0", -98765, "-9.88E4"),
        ("#,##0.###", float("nan"), "NaN"),
        ("x#y", float("-inf"), "-x\u221ey"),
        ("#,##0", 1e20, "100,000,000,000,000,000,000"),
        ("0.0", 1.7976931348623157e308, "17976931348623157" + "0" * 292 + ".0"),
        ("0.000000000000000000000", 0.1, "0.100000000000000000000"),  # shortest digits only
    ],
)
def test_decimal_format_prints_doubles_as_java_does(
    pattern: str, number: float, expected: str
) -> None:
    assert DecimalFormat.parse(pattern).format(number) == expected


@pytest.mark.parametrize("pattern", ["#,", "0.0.0", "0#0x0", "'abc", "##0.##E0", "#E0", "."])
def test_decimal_format_refuses_what_it_cannot_print(pattern: str) -> None:
    with pytest.raises(FormatSyntaxError):
        DecimalFormat.parse(pattern)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("yyyy/MM/dd", "2011/10/12"),
        ("yy-M-d", "11-10-12"),
        ("y yyy yyyyy", "2011 2011 02011"),
        ("MMM MMMM LLL", "Oct October Oct"),
        ("E EEEE u", "Wed Wednesday 3"),
        ("D DDD F W w", "285 285 2 3 42"),
        ("H HH k K h hh a", "9 09 9 9 9 09 AM"),
        ("mm:ss.SSS S", "30:05.007 7"),
        ("G", "AD"),
        ("'at' HH 'o''clock' ''", "at 09 o'clock '"),
        ("yyyy/MM/dd/HH", "2011/10/12/09"),
    ],
)
def test_simple_date_format_fields(pattern: str, expected: str) -> None:
    assert SimpleDateFormat.parse(pattern).format(OCT_12) == expected


def test_midnight_and_noon_in_12_and_24_hour_fields() -> None:
    fmt = SimpleDateFormat.parse("H k K h a")
    assert fmt.format(datetime(2011, 1, 1, 0)) == "0 24 0 12 AM"
    assert fmt.format(datetime(2011, 1, 1, 12)) == "12 12 0 12 PM"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (datetime(2011, 1, 1), "2011-01"),  # a Saturday: week 1 holds January 1
        (datetime(2011, 12, 31), "2011-53"),
        (datetime(2012, 12, 30), "2013-01"),  # a Sunday in the week of January 1, 2013
        (datetime(1, 1, 1), "0001-01"),
        (datetime(9999, 12, 31), "10000-01"),
    ],
)
def test_week_year_and_week_follow_en_us_rules(day: datetime, expected: str) -> None:
    assert SimpleDateFormat.parse("YYYY-ww").format(day) == expected


def test_zone_letters_show_the_offset_of_an_aware_time() -> None:
    plus_two = OCT_12.replace(tzinfo=timezone(timedelta(hours=2), "CEST"))
    assert SimpleDateFormat.parse("z Z X XX XXX").format(plus_two) == "CEST +0200 +02 +0200 +02:00"
    utc = OCT_12.replace(tzinfo=UTC)
    assert SimpleDateFormat.parse("X XXX").format(utc) == "Z Z"


@pytest.mark.parametrize("pattern", ["yyyy/qq", "'open", "XXXX", "b"])
def test_simple_date_format_refuses_unknown_letters_and_open_quotes(pattern: str) -> None:
    with pytest.raises(FormatSyntaxError):
        SimpleDateFormat.parse(pattern)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1Y2M3D", Period(1, 2, 3)),
        ("-P1M", Period(0, -1, 0)),
        ("+P1W", Period(0, 0, 7)),
        ("P-1Y+2W1D", Period(-1, 0, 15)),
        ("p1d", Period(0, 0, 1)),
    ],
)
def test_periods_parse_as_java_time_period(text: str, expected: Period) -> None:
    assert Period.parse(text) == expected


@pytest.mark.parametrize("text", ["", "P", "1M", "PT1H", "P1.5D", "P99999999999D", "P1M1Y"])
def test_bad_periods_are_refused(text: str) -> None:
    with pytest.raises(FormatSyntaxError):
        Period.parse(text)


def test_adding_a_period_clamps_the_day_then_adds_days() -> None:
    assert Period(0, 1, 1).add_to(datetime(2011, 1, 31)) == datetime(2011, 3, 1)
    assert Period(1, 0, 0).add_to(datetime(2012, 2, 29)) == datetime(2013, 2, 28)
    with pytest.raises(OverflowError):
        Period(9999, 0, 0).add_to(datetime(2011, 1, 1))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT30M", 1800),
        ("-PT1H", -3600),
        ("P1DT1S", 86401),
        ("PT1.9S", 1),
        ("PT-0.5S", -1),  # Duration.getSeconds rounds towards negative infinity
        ("pt2m", 120),
    ],
)
def test_durations_parse_as_java_time_duration_whole_seconds(text: str, seconds: int) -> None:
    assert parse_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "P1M", "PT1.1234567890S", "T1H"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(FormatSyntaxError):
        parse_duration_seconds(text)


@pytest.mark.parametrize(
    ("pattern", "number", "expected"),
    [
        ("0#none|1#one|1<many", 0, "none"),
        ("0#none|1#one|1<many", 1, "one"),
        ("0#none|1#one|1<many", 1.0000001, "many"),
        ("0#none|1#one|1<many", -5, "none"),  # below the first limit: the first text
        ("0#none|1#one|1<many", float("nan"), "none"),
        ("-\u221e#low|0\u2264zero or more|\u221e#infinite", float("inf"), "infinite"),
        ("0#'#'|1#it''s", 0, "#"),
        ("0#'#'|1#it''s", 1, "it's"),
        (" 1 #spaced", 1, "spaced"),
    ],
)
def test_choice_format_picks_the_last_limit_not_above_the_number(
    pattern: str, number: float, expected: str
) -> None:
    choice = ChoiceFormat.parse(pattern)
    assert choice.texts[choice.choose(number)] == expected


@pytest.mark.parametrize("pattern", ["", "#a", "x#a", "1#a|0#b", "1#a|1#b", "0#a#b"])
def test_choice_format_refuses_bad_intervals(pattern: str) -> None:
    with pytest.raises(FormatSyntaxError):
        ChoiceFormat.parse(pattern)


@pytest.mark.parametrize(
    ("pattern", "arguments", "expected"),
    [
        ("a'b'c{0}", ["x"], "abcx"),
        ("a''b{0}", ["x"], "a'bx"),
        ("'{0}'{0}", ["x"], "{0}x"),
        ("'a''b'", [], "a'b"),
        ("x}y", [], "x}y"),
        ("{1}{0}", ["a", "b"], "ba"),
        ("{5}", ["a"], "{5}"),
        ("{0}", [None], "null"),
        ("{0,number,#}", [None], "null"),
        ("{0}", [1234.5], "1,234.5"),
        ("{0}", [OCT_12], "10/12/11, 9:30 AM"),
        ("{0,date}|{0,time}", [OCT_12], "Oct 12, 2011|9:30:05 AM"),
        ("{0,time,short}|{0,date,short}", [OCT_12], "9:30 AM|10/12/11"),
        ("{0, Number , Percent }", [0.5], "50%"),
        ("{0,number, #}", [5.0], " 5"),
        ("{0,date,yyyy'{'MM}", [OCT_12], "2011{10"),
        ("{0,choice,0#none|1#{1} of {0,number,'#'.0}}", [2.0, "x"], "x of 2.0"),
        ("{0,choice,0#{0,choice,0'#'zero'|'1'#'one}|2#two}", [1.0], "one"),
        ("{0,choice,0#it''s {0}}", [0.0], "its {0}"),  # the chosen text is a new pattern
        ("ab{0,choice,{", [1.0], "ab"),  # Java drops an element left open inside braces
    ],
)
def test_message_format(pattern: str, arguments: list, expected: str) -> None:
    assert MessageFormat.parse(pattern).format(arguments) == expected


@pytest.mark.parametrize(
    ("pattern", "position"),
    [("{0", 0), ("{x}", 1), ("{-1}", 1), ("{0,nope}", 3), ("{0,number,#,}", 11), ("{10000}", 1)],
)
def test_message_format_refuses_bad_elements_at_their_position(pattern: str, position: int) -> None:
    with pytest.raises(FormatSyntaxError) as refused:
        MessageFormat.parse(pattern)
    assert refused.value.position == position


def test_a_broken_pattern_inside_a_choice_text_is_refused_when_parsed() -> None:
    with pytest.raises(FormatSyntaxError):
        MessageFormat.parse("{0,choice,0#{x}}")


def test_an_unquoted_hash_in_a_choice_text_is_a_limit_separator_as_in_java() -> None:
    with pytest.raises(FormatSyntaxError):
        MessageFormat.parse("{0,choice,0#{0,number,#.0}}")


def test_a_string_cannot_be_formatted_as_a_number_or_date() -> None:
    for pattern in ("{0,number}", "{0,date}", "{0,choice,0#a}"):
        with pytest.raises(FormatArgumentError):
            MessageFormat.parse(pattern).format(["text"])


@pytest.mark.parametrize(
    ("text", "value"),
    [(" 1.5 ", 1.5), ("-2e3", -2000.0), ("1.", 1.0), (".5", 0.5), ("7d", 7.0), ("+3F", 3.0)],
)
def test_parse_double_reads_java_decimal_text(text: str, value: float) -> None:
    assert parse_double(text) == value


@pytest.mark.parametrize("text", ["", "1_000", "0x10", "1,5", "e5", "\u0661"])
def test_parse_double_refuses_what_java_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_double(text)
