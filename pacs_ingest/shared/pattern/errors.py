"""The two ways a `--filepath` pattern fails: refused when parsed, or unable to render one object.

A `PatternError` stops start-up (exit 2) and points at the column; a `RenderError` belongs to one
object, which the worker quarantines with the reason "cannot render" while the rest carry on.
"""


class PatternError(ValueError):
    """Raised for an invalid pattern; `column` (1-based) points at the offending place."""

    def __init__(self, message: str, pattern: str, column: int) -> None:
        column = max(1, min(column, len(pattern) + 1))
        super().__init__(
            f"invalid --filepath at column {column}: {message}\n  {pattern}\n"
            f"  {' ' * (column - 1)}^"
        )
        self.message = message
        self.column = column


class RenderError(ValueError):
    """Raised when one object's attributes cannot be rendered by a valid pattern.

    dcm4che answers these with a processing failure: a date offset (`date-P1M`) on a missing
    date, a date type on an attribute that is no date, an IS that is no integer.
    """
