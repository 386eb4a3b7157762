"""Java's `DecimalFormat` for doubles, in the en_US locale: what `{n,number,...}` prints.

dcm4che hands number placeholders to Java's MessageFormat, so a `--filepath` written for dcm4che
expects Java's digits: HALF_EVEN rounding of the double's exact binary value (as the JDK has done
since 8), grouping by the distance of the last `,` from the decimal point, `-0` for a negative
value that rounds to zero, `NaN` without prefix or suffix, `%` and `‰` multiplying as doubles.

Subset, refused when parsed (so at start-up): exponent patterns with `#` in the integer part
(engineering notation, which JDK 17 itself formats contrary to its documentation).
"""

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal

from pacs_ingest.shared.pattern.java.text import FormatSyntaxError, read_quoted

MINUS = "-"
INFINITY = "\u221e"
NAN = "NaN"
CURRENCY_SIGN = "\u00a4"
PER_MILLE = "\u2030"
_CURRENCY_SYMBOL = "$"  # en_US
_CURRENCY_CODE = "USD"
_NUMBER_CHARS = "0#,."
_MAX_INTEGER_DIGITS = 309  # Java's limits for doubles
_MAX_FRACTION_DIGITS = 340
_EXACT = Context(prec=_MAX_INTEGER_DIGITS + _MAX_FRACTION_DIGITS + 10, rounding=ROUND_HALF_EVEN)
_NUMBER_PART = re.compile(r"(?P<int>[#,]*[0,]*)(?:\.(?P<frac>0*#*))?(?:E(?P<exp>0+))?")

# NumberFormat.getInstance / getIntegerInstance / getPercentInstance / getCurrencyInstance
STYLE_PATTERNS = {
    "": "#,##0.###",
    "integer": "#,##0",
    "percent": "#,##0%",
    "currency": "\u00a4#,##0.00",
}


@dataclass(frozen=True, slots=True)
class DecimalFormat:
    """A parsed DecimalFormat pattern; `format` renders one double."""

    positive_prefix: str
    positive_suffix: str
    negative_prefix: str
    negative_suffix: str
    multiplier: int
    min_int: int
    min_frac: int
    max_frac: int
    grouping: int  # 0: no grouping
    decimal_always: bool
    min_exponent: int  # 0: no exponent

    @classmethod
    def parse(cls, pattern: str) -> "DecimalFormat":
        """Raises FormatSyntaxError (with a position in `pattern`) for what Java refuses."""
        positive, end = _subpattern(pattern, 0)
        negative = None
        if end < len(pattern):  # stopped at ';'
            negative, _ = _subpattern(pattern, end + 1)
        prefix, number, suffix, multiplier = positive
        min_int, min_frac, max_frac, grouping, always, min_exp = number
        if negative is None:
            neg_prefix, neg_suffix = MINUS + prefix, suffix
        else:
            neg_prefix, neg_suffix = negative[0], negative[2]
        return cls(
            prefix, suffix, neg_prefix, neg_suffix, multiplier,
            min_int, min_frac, max_frac, grouping, always, min_exp,
        )  # fmt: skip

    def format(self, number: float) -> str:
        if math.isnan(number):
            return NAN
        negative = number < 0 or (number == 0 and math.copysign(1.0, number) < 0)
        if self.multiplier != 1:
            number *= self.multiplier  # as a double, like Java: 0.07 * 100 = 7.000000000000001
        prefix, suffix = (
            (self.negative_prefix, self.negative_suffix)
            if negative
            else (self.positive_prefix, self.positive_suffix)
        )
        magnitude = abs(number)
        if math.isinf(magnitude):
            body = INFINITY
        elif self.min_exponent:
            body = self._scientific(Decimal(magnitude))
        else:
            body = self._fixed(Decimal(magnitude), Decimal(repr(magnitude)))
        return f"{prefix}{body}{suffix}"

    def _fixed(self, value: Decimal, shortest: Decimal) -> str:
        # Java prints the shortest digits that identify the double (zeros beyond them), and
        # rounds where those digits are too many, deciding a tie by the exact binary value.
        if -shortest.as_tuple().exponent <= self.max_frac:  # type: ignore[operator]
            rounded = shortest
        else:
            rounded = value.quantize(Decimal(1).scaleb(-self.max_frac), context=_EXACT)
        digits = f"{rounded:f}"
        whole, _, fraction = digits.partition(".")
        whole = whole.lstrip("0").rjust(self.min_int, "0")
        fraction = fraction.rstrip("0").ljust(self.min_frac, "0")
        if self.grouping and len(whole) > self.grouping:
            head = len(whole) % self.grouping or self.grouping
            groups = [whole[:head]] + [
                whole[i : i + self.grouping] for i in range(head, len(whole), self.grouping)
            ]
            whole = ",".join(groups)
        if not whole and not fraction:
            whole = "0"
        if fraction or self.decimal_always:
            return f"{whole}.{fraction}"
        return whole

    def _scientific(self, value: Decimal) -> str:
        exponent = 0
        if value:
            significant = self.min_int + self.max_frac
            value = Context(prec=significant, rounding=ROUND_HALF_EVEN).plus(value)
            exponent = value.adjusted() - (self.min_int - 1)
            value = value.scaleb(-exponent)
        mantissa = self._fixed(value, value)
        sign = MINUS if exponent < 0 else ""
        return f"{mantissa}E{sign}{str(abs(exponent)).rjust(self.min_exponent, '0')}"


def _affix(pattern: str, start: int, stop_at: str) -> tuple[str, int, int]:
    """(text, end, multiplier) of a prefix or suffix starting at `start`, quotes resolved."""
    text: list[str] = []
    multiplier = 1
    index = start
    while index < len(pattern):
        char = pattern[index]
        if char == "'":
            quoted, index = read_quoted(pattern, index)
            text.append(quoted)
            continue
        if char in stop_at:
            break
        if char == "%":
            multiplier = 100
        elif char == PER_MILLE:
            multiplier = 1000
        if char == CURRENCY_SIGN:
            double = pattern.startswith(CURRENCY_SIGN * 2, index)
            text.append(_CURRENCY_CODE if double else _CURRENCY_SYMBOL)
            index += 2 if double else 1
            continue
        text.append(char)
        index += 1
    return "".join(text), index, multiplier


def _subpattern(pattern: str, start: int) -> tuple[tuple, int]:
    prefix, index, multiplier = _affix(pattern, start, _NUMBER_CHARS + ";")
    match = _NUMBER_PART.match(pattern, index)
    assert match is not None  # every group may be empty
    number = _number_part(match, pattern)
    suffix, end, suffix_multiplier = _affix(pattern, match.end(), _NUMBER_CHARS + ";")
    if end < len(pattern) and pattern[end] != ";":
        raise FormatSyntaxError(f"unexpected {pattern[end]!r} in number pattern", end)
    return (prefix, number, suffix, max(multiplier, suffix_multiplier)), end


def _number_part(match: re.Match[str], pattern: str) -> tuple[int, int, int, int, bool, int]:
    integer = match["int"]
    fraction = match["frac"] or ""
    exponent = match["exp"] or ""
    digits = integer.replace(",", "")
    grouping = 0
    if "," in integer:
        grouping = len(integer) - integer.rindex(",") - 1
        if grouping == 0:
            raise FormatSyntaxError(
                "grouping separator at the end", match.start() + len(integer) - 1
            )
    if exponent and "#" in digits:
        raise FormatSyntaxError(
            "exponent patterns with '#' before the decimal point are not supported",
            match.start(),
        )
    min_int = digits.count("0")
    min_frac = fraction.count("0")
    if match["frac"] is not None and "0" not in digits + fraction:
        # Java's rule for "#.##" and ".##": the digit next to the point becomes a '0'.
        if not digits and not fraction:
            raise FormatSyntaxError("a lone decimal point is not a number pattern", match.start())
        if digits:
            min_int = 1
        else:
            min_frac = 1
    if exponent and min_int == 0:
        raise FormatSyntaxError("an exponent pattern needs a '0' before the decimal point", 0)
    always = match["frac"] is not None and not fraction
    max_frac = min(len(fraction), _MAX_FRACTION_DIGITS)
    min_int = min(min_int, _MAX_INTEGER_DIGITS)
    return min_int, min(min_frac, max_frac), max_frac, grouping, always, len(exponent)
