"""Java's `SimpleDateFormat` (en_US) and the ISO-8601 periods dcm4che adds to dates.

dcm4che formats `{n,date,...}` and `{n,time,...}` placeholders with Java's MessageFormat: a style
keyword (`short`, `medium`, `long`, `full`) picks the JDK 17 (CLDR) en_US pattern, anything else
is a SimpleDateFormat pattern such as `yyyy/MM/dd`. Date-times are naive local values, so the
output does not depend on the machine's time zone, except for the zone letters `z`, `Z` and `X`,
which show the local zone (Python knows no long zone names: `zzzz` shows the short name).

`date-P1M` and `time+PT30M` add a `java.time.Period` or `Duration`, parsed by Java's grammar.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pacs_ingest.shared.javalang import INT32_MAX
from pacs_ingest.shared.pattern.java.text import FormatSyntaxError, read_quoted

DATE_STYLES = {
    "": "MMM d, y",
    "short": "M/d/yy",
    "medium": "MMM d, y",
    "long": "MMMM d, y",
    "full": "EEEE, MMMM d, y",
}
TIME_STYLES = {
    "": "h:mm:ss a",
    "short": "h:mm a",
    "medium": "h:mm:ss a",
    "long": "h:mm:ss a z",
    "full": "h:mm:ss a zzzz",
}
DEFAULT_DATE_TIME = "M/d/yy, h:mm a"  # how MessageFormat prints a date argument without a format

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_LETTERS = frozenset("GyYMLwWDdFEuaHkKhmsSzZX")

Field = tuple[str, int]  # (pattern letter, repeat count)


@dataclass(frozen=True, slots=True)
class SimpleDateFormat:
    """A parsed SimpleDateFormat pattern: literal text and (letter, count) fields."""

    parts: tuple[str | Field, ...]

    @classmethod
    def parse(cls, pattern: str) -> "SimpleDateFormat":
        """Raises FormatSyntaxError for an unknown letter or an unterminated quote."""
        parts: list[str | Field] = []
        index = 0
        while index < len(pattern):
            char = pattern[index]
            if char == "'":
                text, index = read_quoted(pattern, index)
                parts.append(text)
            elif char.isascii() and char.isalpha():
                if char not in _LETTERS:
                    raise FormatSyntaxError(f"illegal date pattern character {char!r}", index)
                end = index
                while end < len(pattern) and pattern[end] == char:
                    end += 1
                if char == "X" and end - index > 3:
                    raise FormatSyntaxError("'X' takes 1 to 3 letters", index)
                parts.append((char, end - index))
                index = end
            else:
                parts.append(char)
                index += 1
        return cls(tuple(parts))

    def format(self, moment: datetime) -> str:
        return "".join(
            part if isinstance(part, str) else _field(moment, *part) for part in self.parts
        )


def _number(value: int, count: int) -> str:
    return str(value).rjust(count, "0")


def _year(year: int, count: int) -> str:
    return _number(year % 100, 2) if count == 2 else _number(year, count)


def _text(names: list[str], index: int, count: int) -> str:
    return names[index] if count >= 4 else names[index][:3]


def _sunday_based(ordinal: int) -> int:
    return ordinal % 7  # proleptic ordinal 1 (0001-01-01) is a Monday, so Sunday gives 0


def _week_of_year(moment: datetime) -> tuple[int, int]:
    """(week year, week) with en_US rules: weeks start on Sunday, week 1 holds January 1.

    Counted on day ordinals, so the first and last weeks of years 1 and 9999 need no dates
    outside what `datetime` can hold.
    """
    day = moment.toordinal()
    week_start = day - _sunday_based(day)
    next_january = _january_first(moment.year + 1)
    if week_start == next_january - _sunday_based(next_january):
        return moment.year + 1, 1
    january = _january_first(moment.year)
    return moment.year, (week_start - (january - _sunday_based(january))) // 7 + 1


def _january_first(year: int) -> int:
    """The ordinal of January 1 of `year`, also for year 10000."""
    return (year - 1) * 365 + (year - 1) // 4 - (year - 1) // 100 + (year - 1) // 400 + 1


def _zone(moment: datetime) -> tuple[str, timedelta]:
    try:
        aware = moment if moment.tzinfo else moment.astimezone()
    except (OverflowError, OSError, ValueError):
        aware = moment.replace(tzinfo=UTC)
    offset = aware.utcoffset() or timedelta(0)
    return aware.tzname() or "GMT", offset


def _offset(offset: timedelta, *, colon: bool, minutes: bool = True) -> str:
    total = int(offset.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    hours, rest = divmod(abs(total), 60)
    if not minutes:
        return f"{sign}{hours:02d}"
    return f"{sign}{hours:02d}{':' if colon else ''}{rest:02d}"


def _zone_field(moment: datetime, letter: str, count: int) -> str:
    name, offset = _zone(moment)
    if letter == "z":
        return name
    if letter == "Z":
        return _offset(offset, colon=False)
    if not offset:
        return "Z"
    return _offset(offset, colon=count == 3, minutes=count > 1)


def _field(moment: datetime, letter: str, count: int) -> str:  # noqa: PLR0911 - a table
    hour = moment.hour
    if letter in "zZX":
        return _zone_field(moment, letter, count)
    if letter == "G":
        return "AD"
    if letter == "y":
        return _year(moment.year, count)
    if letter in "Yw":
        week_year, week = _week_of_year(moment)
        return _year(week_year, count) if letter == "Y" else _number(week, count)
    if letter in "ML":
        if count >= 3:
            return _text(_MONTHS, moment.month - 1, count)
        return _number(moment.month, count)
    if letter == "E":
        return _text(_DAYS, moment.weekday(), count)
    if letter == "a":
        return "AM" if hour < 12 else "PM"
    values = {
        "W": (moment.day - 1 + _sunday_based(moment.replace(day=1).toordinal())) // 7 + 1,
        "D": moment.timetuple().tm_yday,
        "d": moment.day,
        "F": (moment.day - 1) // 7 + 1,
        "u": moment.isoweekday(),
        "H": hour,
        "k": hour or 24,
        "K": hour % 12,
        "h": hour % 12 or 12,
        "m": moment.minute,
        "s": moment.second,
        "S": moment.microsecond // 1000,
    }
    return _number(values[letter], count)


def date_format(style: str, styles: dict[str, str]) -> SimpleDateFormat:
    """The format for a MessageFormat date/time style: a keyword, else a pattern."""
    keyword = style if style in styles else style.strip().lower()
    if keyword in styles:
        return SimpleDateFormat.parse(styles[keyword])
    return SimpleDateFormat.parse(style)


# -- periods and durations ----------------------------------------------------------------------

_PERIOD = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)Y)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)W)?(?:([-+]?[0-9]+)D)?",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"([-+]?)P(?:([-+]?[0-9]+)D)?"
    r"(T(?:([-+]?[0-9]+)H)?(?:([-+]?[0-9]+)M)?(?:([-+]?[0-9]+)(?:[.,]([0-9]{0,9}))?S)?)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Period:
    """A `java.time.Period`: years, months and days, added in that order with month clamping."""

    years: int
    months: int
    days: int

    @classmethod
    def parse(cls, text: str) -> "Period":
        """Java's `Period.parse`; raises FormatSyntaxError (position 0) when it would throw."""
        match = _PERIOD.fullmatch(text)
        if match is None or not any(match.groups()[1:]):
            raise FormatSyntaxError(f"{text!r} is not an ISO-8601 period such as P1Y2M3D", 0)
        sign = -1 if match[1] == "-" else 1
        years, months, weeks, days = (_int(group, text) for group in match.groups()[1:])
        return cls(sign * years, sign * months, sign * _checked(weeks * 7 + days, text))

    def add_to(self, moment: datetime) -> datetime:
        """`moment` plus this period; raises OverflowError outside years 1..9999."""
        total = moment.year * 12 + moment.month - 1 + self.years * 12 + self.months
        year, month = divmod(total, 12)
        if not 1 <= year <= 9999:
            raise OverflowError("date out of range")
        day = min(moment.day, _days_in_month(year, month + 1))
        return moment.replace(year=year, month=month + 1, day=day) + timedelta(days=self.days)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _int(group: str | None, text: str) -> int:
    return 0 if group is None else _checked(int(group), text)


def _checked(value: int, text: str) -> int:
    if abs(value) > INT32_MAX:
        raise FormatSyntaxError(f"{text!r}: number out of range", 0)
    return value


def parse_duration_seconds(text: str) -> int:
    """Java's `Duration.parse(text).getSeconds()`: whole seconds, rounded towards -infinity."""
    match = _DURATION.fullmatch(text)
    if match is None or match[3] in ("T", "t") or not any(match.groups()[1:]):
        raise FormatSyntaxError(f"{text!r} is not an ISO-8601 duration such as PT30M", 0)
    days, hours, minutes, seconds = (_int(match[i], text) for i in (2, 4, 5, 6))
    fraction = int((match[7] or "").ljust(9, "0"))
    if (match[6] or "").startswith("-"):
        fraction = -fraction
    nanos = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    nanos = nanos * 1_000_000_000 + fraction
    if match[1] == "-":
        nanos = -nanos
    return nanos // 1_000_000_000
