"""Command-line options as a table: one row per option, dcm4che's parsing rules, exit 2 if bad.

Each part of the product (receiver, workers, the command) declares its rows; `parse_args` reads a
command line the way dcm4che's tools do (commons-cli's POSIX parser), so a `storescp` command line
means the same thing here:

* `--name value`, `--name=value`, `-b value`, `-bvalue`; no abbreviations of long names;
* an option of kind "multi" is greedy: every following token is one more value until a token that
  is a *known* option (an unknown `--foo` there is a value, not an error); repeats accumulate;
* an option of kind "value" given twice keeps its first value, unless the row says `accumulate`;
* values are never split on commas; positional tokens and everything after `--` are operands,
  which only `render` reads (the storescp commands ignore them, as the reference does);
* numbers follow dcm4che's rules (a trailing `H` means hex).

Every option can be set instead by one environment variable, named by one rule from its first
long flag (`environment_variable`): `--max-pdulen-rcv` is PACS_INGEST_MAX_PDULEN_RCV. The command
line wins over the variable. A flag's variable is 1, true, yes or on (set) or 0, false, no, off or
empty (not set); a multi-valued option's variable holds its values separated by blanks; any value
is checked exactly like one from the command line. `-h` and `-V` are answered only once the whole
command line scanned without error, before required options and values are checked (as the
reference does).

Settings dataclasses are filled from the parsed options by `from_options`: each field is the
option of the same name, so adding an option is one row, and one line where it is used.
"""

import argparse
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from pacs_ingest.shared.javalang import INT32_MAX, INT32_MIN

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[+-]?[0-9a-fA-F]+H")
_HELP_WIDTH = 100
_FLAG_COLUMN = 32
ENV_PREFIX = "PACS_INGEST_"
# Variables not named by the rule: REDIS_URL is the name rq, Redis clients and their users know.
ENV_EXCEPTIONS = {"--redis-url": "REDIS_URL"}
_FLAG_TRUE = ("1", "true", "yes", "on")
_FLAG_FALSE = ("0", "false", "no", "off", "")


class StartupError(Exception):
    """Base of every reason a command cannot start: it exits 2 with the message and a hint."""


class OptionsError(StartupError):
    """The command line itself is wrong: unknown option, missing value, bad number, missing -b."""


class ConfigError(StartupError):
    """The options parse, but describe something that cannot work (unreadable key store, unknown
    SOP class keyword, a TLS version OpenSSL refuses, a port in use)."""


@dataclass(frozen=True, slots=True)
class Option:
    """One command-line option.

    `kind` is "value" (one value; the first occurrence wins unless `accumulate`, then every
    occurrence is kept in order), "flag" (present or not) or "multi" (greedy, one or more values
    per occurrence, all occurrences accumulate). The first long flag names the option: its
    attribute (`dest`) and its environment variable (`env`); other flags are other spellings.
    """

    flags: tuple[str, ...]
    help: str
    group: str
    type: Callable[[str], Any] | None = None
    default: Any = None
    metavar: str | None = None
    kind: str = "value"
    required: bool = False
    accumulate: bool = False

    @property
    def name(self) -> str:
        return next(flag for flag in self.flags if flag.startswith("--"))

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return environment_variable(self.name)


def environment_variable(long_flag: str) -> str:
    """The variable that sets the option named `long_flag`: PACS_INGEST_ and the flag without its
    dashes, upper case, `-` as `_` (ENV_EXCEPTIONS name the rest)."""
    if long_flag in ENV_EXCEPTIONS:
        return ENV_EXCEPTIONS[long_flag]
    return ENV_PREFIX + long_flag.removeprefix("--").replace("-", "_").upper()


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


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(text: str) -> int:
    """A size in bytes: a whole number, optionally followed by K, M, G or T (powers of 1024)."""
    unit = text[-1:].upper() if text[-1:].isalpha() else ""
    digits = text[: len(text) - len(unit)]
    if unit not in _SIZE_UNITS or not digits.isdigit():
        raise argparse.ArgumentTypeError(f"invalid size: {text!r} (e.g. 500M, 2G)")
    return int(digits) * _SIZE_UNITS[unit]


def one_of(flag: str, choices: Sequence[str]) -> Callable[[str], str]:
    """A parser that takes one of `choices` for `flag`, and names them all when it refuses."""

    def parse_choice(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(
                f"invalid {flag} {text!r}: choose from {', '.join(choices)}"
            )
        return text

    return parse_choice


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


HELP = Option(("-h", "--help"), "show this help and exit", "help", kind="flag")
VERSION = Option(("-V", "--version"), "show the version and exit", "help", kind="flag")


class _Table:
    """The rows of one command, found by flag."""

    def __init__(self, rows: Iterable[Option]) -> None:
        self.options = list(rows)
        self.rows = [HELP, VERSION, *self.options]
        self.by_flag = {flag: row for row in self.rows for flag in row.flags}

    def match(self, token: str) -> list[tuple[Option, str | None]]:
        """The options `token` names, each with its attached value; [] if it names none."""
        if token.startswith("--"):
            name, equals, value = token.partition("=")
            row = self.by_flag.get(name)
            return [(row, value if equals else None)] if row else []
        if len(token) < 2 or token[0] != "-":
            return []
        row = self.by_flag.get(token[:2])
        if row is None:
            return []
        if len(token) == 2 or row.kind != "flag":
            return [(row, token[2:] or None)]
        # A burst of short flags, e.g. -hV.
        burst = [self.by_flag.get(f"-{char}") for char in token[1:]]
        if all(flag is not None and flag.kind == "flag" for flag in burst):
            return [(flag, None) for flag in burst if flag is not None]
        return []


def _scan(table: _Table, argv: Sequence[str]) -> tuple[dict[Option, list[str]], list[str]]:
    """Every occurrence's raw values, per option, in command-line order; and the operands."""
    found: dict[Option, list[str]] = {}
    operands: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        index += 1
        if token == "--":
            operands += argv[index:]
            break
        matches = table.match(token)
        if not matches:
            if token.startswith("-") and token != "-":
                raise OptionsError(f"Unrecognized option: {token}")
            operands.append(token)
            continue
        for row, attached in matches:
            values = found.setdefault(row, [])
            if row.kind == "flag":
                values.append("")
                continue
            taken = [] if attached is None else [attached]
            while index < len(argv) and (row.kind == "multi" or not taken):
                if table.match(argv[index]):
                    break
                taken.append(argv[index])
                index += 1
            if not taken:
                raise OptionsError(f"Missing argument for option: {row.flags[0].lstrip('-')}")
            values.extend(taken)
    return found, operands


def _convert(row: Option, text: str, source: str) -> Any:
    if row.type is None:
        return text
    try:
        return row.type(text)
    except (argparse.ArgumentTypeError, ValueError) as exc:
        raise OptionsError(f"{source}: {exc}") from None


def _from_environment(row: Option) -> Any:
    raw = os.environ[row.env]
    source = f"environment variable {row.env}"
    if row.kind == "flag":
        if raw.lower() not in (*_FLAG_TRUE, *_FLAG_FALSE):
            raise OptionsError(
                f"{source}: {raw!r} is neither set ({', '.join(_FLAG_TRUE)}) "
                f"nor unset ({', '.join(_FLAG_FALSE[:-1])} or empty)"
            )
        return raw.lower() in _FLAG_TRUE
    if row.kind == "multi" or row.accumulate:
        return [_convert(row, item, source) for item in raw.split()]
    return _convert(row, raw, source)


def _value(row: Option, given: list[str] | None) -> Any:
    """The option's value: from the command line, else the environment, else its default."""
    if given is None and row.env in os.environ:
        return _from_environment(row)
    if given is None and row.required:
        raise OptionsError(f"missing required option {row.flags[0]}")
    if row.kind == "flag":
        return given is not None
    if row.kind == "multi" or row.accumulate:
        if given is None:
            return list(row.default or ())
        return [_convert(row, text, row.name) for text in given]
    return row.default if given is None else _convert(row, given[0], row.name)


def parse_args(rows: Iterable[Option], argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv` by the rules above; raise OptionsError for anything the reference refuses.

    With -h or -V only `help` and `version` are set: the caller answers them and exits 0.
    Otherwise every row's `dest` is set, and `operands` holds the tokens that name no option.
    """
    table = _Table(rows)
    found, operands = _scan(table, argv)
    args = argparse.Namespace(help=HELP in found, version=VERSION in found)
    if args.help or args.version:
        return args
    for row in table.options:
        setattr(args, row.dest, _value(row, found.get(row)))
    args.operands = operands
    return args


Settings = TypeVar("Settings")


def from_options(cls: type[Settings], args: argparse.Namespace, **derived: Any) -> Settings:
    """The settings dataclass `cls` filled from parsed options: each field is the option of the
    same dest (lists become tuples), unless `derived` gives it (a value computed from several
    options, or a nested settings record). TypeError names any field with neither: a settings
    field without an option is a bug, found by the first command that builds it."""
    names = [field.name for field in fields(cls)]  # type: ignore[arg-type]
    missing = [name for name in names if name not in derived and not hasattr(args, name)]
    if missing:
        raise TypeError(f"{cls.__name__}: no option for {', '.join(missing)}")
    values = {name: derived[name] if name in derived else getattr(args, name) for name in names}
    return cls(**{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()})


def hint(prog: str) -> str:
    return f"Try `{prog} --help' for more information."


def _describe(row: Option, *, with_env: bool = True) -> str:
    text = row.help
    if row.required:
        text += " (required)"
    elif row.kind != "flag" and row.default not in (None, [], (), ""):
        default = row.default
        if isinstance(default, (list, tuple)):
            default = " ".join(str(item) for item in default)
        text += f" (default: {default})"
    if row.kind == "multi":
        text += " (several values may follow)"
    elif row.accumulate:
        text += " (may be repeated)"
    if with_env:
        text += f" [env {row.env}]"
    return text


def format_help(usage: str, description: str, rows: Iterable[Option]) -> str:
    """Usage, description, then every option of every group with its default and env var."""
    lines = [
        f"usage: {usage}",
        "",
        *textwrap.wrap(description, _HELP_WIDTH, break_on_hyphens=False),
    ]
    groups: dict[str, list[Option]] = {}
    for row in _Table(rows).rows:
        groups.setdefault(row.group, []).append(row)
    indent = " " * _FLAG_COLUMN
    for group, members in groups.items():
        lines += ["", f"{group}:"]
        for row in members:
            flags = "  " + ", ".join(row.flags)
            if row.metavar:
                flags += f" {row.metavar}"
            described = _describe(row, with_env=row not in (HELP, VERSION))
            wrapped = textwrap.wrap(described, _HELP_WIDTH - _FLAG_COLUMN, break_on_hyphens=False)
            if len(flags) < _FLAG_COLUMN - 1:
                lines.append(flags.ljust(_FLAG_COLUMN) + wrapped[0])
                wrapped = wrapped[1:]
            else:
                lines.append(flags)
            lines += [indent + line for line in wrapped]
    return "\n".join(lines) + "\n"


COMMON = "queue and logging"
REDIS_URL_ROW = Option(
    ("--redis-url",),
    "Redis server holding the job queue, e.g. redis://host:6379/0",
    COMMON,
    type=str,
    metavar="url",
)
LOG_LEVEL_ROW = Option(
    ("--log-level",),
    "DEBUG, INFO, WARNING or ERROR",
    COMMON,
    type=lambda text: text.upper(),
    default="INFO",
    metavar="level",
)
COMMON_ROWS = (
    Option(
        ("--queue",),
        "name of the rq queue",
        COMMON,
        type=str,
        default="pacs-ingest",
        metavar="name",
    ),
    LOG_LEVEL_ROW,
)
