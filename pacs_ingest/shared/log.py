"""Events on stderr: one JSON object per line for log shippers, a readable line on a terminal.

Every line carries an ISO 8601 UTC timestamp with milliseconds, so lines from several hosts and
processes sort and compare without knowing their time zones.
"""

import logging
import os
import sys
import time
from typing import Any

import orjson

_LOGGER = logging.getLogger("pacs_ingest")
_ROLE = ""
_PID = os.getpid()  # read once: a worker logs a line per object, and getpid is a system call


def _forked() -> None:
    global _PID  # noqa: PLW0603 - the child's own pid, once, as it starts
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forked)


_second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text


def timestamp(created: float) -> str:
    """`created` (epoch seconds) as 2026-12-01T14:24:16.123Z; a worker logs an event per
    object, many in one second, so each second is formatted once."""
    global _second  # noqa: PLW0603 - a cache; a tuple, replaced whole, so threads may share it
    whole = int(created)
    millis = int((created - whole) * 1000)
    second, text = _second
    if second != whole:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, text)
    return f"{text}.{millis:03d}Z"


class _JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _readable_value(value: Any) -> str:
    text = str(value)
    if text and not any(c.isspace() or c in "\"'=" for c in text):
        return text
    return orjson.dumps(text).decode()  # quoted, so a field never reads as two


class _ReadableFormatter(logging.Formatter):
    """`<ts> <LEVEL> <event> key=value ...` for a person watching a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={_readable_value(value)}"
            for key, value in getattr(record, "fields", {}).items()
        )
        line = f"{timestamp(record.created)} {record.levelname:<7} {record.getMessage()} {fields}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.rstrip()


def configure(level: str = "INFO", role: str = "") -> None:
    """Route our events, and warnings from the libraries, to stderr: readable lines when it is a
    terminal, JSON lines otherwise (a file, a pipe, journald, a container log).

    Called once per process; `role` names the process in every line so a mixed log stays readable.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ReadableFormatter() if sys.stderr.isatty() else _JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _LOGGER.setLevel(level.upper())
    # No line shows the thread or process names a LogRecord looks up for every record.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    global _ROLE  # noqa: PLW0603 - one process, one role, set once at start
    _ROLE = role


def _emit(level: int, name: str, fields: dict[str, Any]) -> None:
    if _LOGGER.isEnabledFor(level):
        if _ROLE:
            fields.setdefault("role", _ROLE)
            fields.setdefault("pid", _PID)
        # Made and handled directly: Logger.log would also walk the stack for the caller's file
        # and line, which no line shows, at a cost workers pay for every object they file.
        record = _LOGGER.makeRecord(_LOGGER.name, level, "", 0, name, (), None)
        record.fields = fields
        _LOGGER.handle(record)


def event(name: str, /, **fields: Any) -> None:
    """Log event `name` with `fields`, at INFO."""
    _emit(logging.INFO, name, fields)


def debug(name: str, /, **fields: Any) -> None:
    _emit(logging.DEBUG, name, fields)


def warning(name: str, /, **fields: Any) -> None:
    _emit(logging.WARNING, name, fields)


def error(name: str, /, **fields: Any) -> None:
    _emit(logging.ERROR, name, fields)
