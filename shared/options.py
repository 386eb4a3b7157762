"""Command-line options as a table: one row per option, shared parsing rules, exit 2 on bad input.

Each part of the product (receiver, workers, the command) declares its rows; `add_options` turns
rows into argparse arguments. Numbers follow dcm4che's rules (a trailing `H` means hex), and a
value from an environment variable is checked exactly like one from the command line.
"""

import argparse
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[+-]?[0-9a-fA-F]+H")


@dataclass(frozen=True, slots=True)
class Option:
    """One command-line option. `kind` is "value", "flag" (store_true) or "multi" (1+ values)."""

    flags: tuple[str, ...]
    help: str
    group: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    env: str | None = None
    metavar: str | None = None
    kind: str = "value"
    required: bool = False

    @property
    def dest(self) -> str:
        return self.flags[-1].lstrip("-").replace("-", "_")


def dicom_int(text: str) -> int:
    """An integer as dcm4che reads it: optional sign, then decimal, or hex with a trailing `H`."""
    if _DECIMAL.fullmatch(text):
        value = int(text)
    elif _HEX.fullmatch(text):
        value = int(text[:-1], 16)
    else:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}")
    if not INT32_MIN <= value <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"number out of range: {text!r}")
    return value


def non_negative(parse: Callable[[str], int]) -> Callable[[str], int]:
    def parse_non_negative(text: str) -> int:
        value = parse(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
        return value

    return parse_non_negative


def positive(parse: Callable[[str], int]) -> Callable[[str], int]:
    def parse_positive(text: str) -> int:
        value = parse(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
        return value

    return parse_positive


def _env_default(option: Option, parser: argparse.ArgumentParser) -> Any:
    if option.env is None or option.env not in os.environ:
        return option.default
    raw = os.environ[option.env]
    if option.kind == "flag":
        return raw.lower() in ("1", "true", "yes", "on")
    if option.type is None:
        return raw
    try:
        return option.type(raw)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        parser.error(f"environment variable {option.env}: {exc}")


def add_options(parser: argparse.ArgumentParser, rows: Iterable[Option]) -> None:
    """Add `rows` to `parser`, one argument group per `Option.group`, defaults shown in help."""
    groups: dict[str, Any] = {}
    for option in rows:
        group = groups.get(option.group)
        if group is None:
            group = groups[option.group] = parser.add_argument_group(option.group)
        default = _env_default(option, parser)
        help_text = option.help
        if option.kind != "flag" and default not in (None, [], ""):
            help_text += f" (default: {default})"
        if option.env:
            help_text += f" [env {option.env}]"
        kwargs: dict[str, Any] = {"dest": option.dest, "help": help_text, "default": default}
        if option.kind == "flag":
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = option.type
            kwargs["metavar"] = option.metavar
            if option.kind == "multi":
                kwargs["nargs"] = "+"
                kwargs["action"] = "extend"
            kwargs["required"] = option.required and default is None
        group.add_argument(*option.flags, **kwargs)


def make_parser(prog: str, description: str, rows: Sequence[Option]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(parser, rows)
    return parser


COMMON = "queue and logging"
REDIS_URL_ROW = Option(
    ("--redis-url",),
    "Redis server holding the job queue, e.g. redis://host:6379/0",
    COMMON,
    type=str,
    env="REDIS_URL",
    metavar="url",
)
COMMON_ROWS = (
    Option(
        ("--queue",),
        "name of the rq queue",
        COMMON,
        type=str,
        default="pacs-ingest",
        env="PACS_INGEST_QUEUE",
        metavar="name",
    ),
    Option(
        ("--log-level",),
        "DEBUG, INFO, WARNING or ERROR",
        COMMON,
        type=lambda text: text.upper(),
        default="INFO",
        env="PACS_INGEST_LOG_LEVEL",
        metavar="level",
    ),
)
