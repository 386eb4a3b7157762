"""One JSON line per event, on stderr, so operators can grep and ship logs without parsing prose."""

import logging
import os
import sys
from typing import Any

import orjson

_LOGGER = logging.getLogger("pacs_ingest")
_ROLE = ""


class _JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "INFO", role: str = "") -> None:
    """Route our events, and warnings from the libraries, to stderr as JSON lines.

    Called once per process; `role` names the process in every line so a mixed log stays readable.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _LOGGER.setLevel(level.upper())
    global _ROLE  # noqa: PLW0603 - one process, one role, set once at start
    _ROLE = role


def _emit(level: int, name: str, fields: dict[str, Any]) -> None:
    if _LOGGER.isEnabledFor(level):
        if _ROLE:
            fields.setdefault("role", _ROLE)
            fields.setdefault("pid", os.getpid())
        _LOGGER.log(level, name, extra={"fields": fields})


def event(name: str, /, **fields: Any) -> None:
    """Log event `name` with `fields` as one JSON object, at INFO."""
    _emit(logging.INFO, name, fields)


def debug(name: str, /, **fields: Any) -> None:
    _emit(logging.DEBUG, name, fields)


def warning(name: str, /, **fields: Any) -> None:
    _emit(logging.WARNING, name, fields)


def error(name: str, /, **fields: Any) -> None:
    _emit(logging.ERROR, name, fields)
