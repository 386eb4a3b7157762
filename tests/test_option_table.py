"""Every option of every command is one row with one environment variable named by one rule, and
settings are filled from those rows, without a process."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from pacs_ingest.cli import COMMANDS, main
from pacs_ingest.receiver.options import ReceiverSettings
from pacs_ingest.shared.options import Option, OptionsError, from_options, parse_args
from pacs_ingest.workers.main import WorkerSettings
from pacs_ingest.workers.reprocess import ReprocessSettings

# The smallest command line each command parses (work's --allow-directory is checked later). Only
# parsed, never run: the port and the Redis URL name nothing.
NOWHERE = "redis://127.0.0.1:1/0"
REQUIRED = {
    "up": ["-b", "104", "--spool-dir", "spool"],
    "receive": ["-b", "104", "--spool-dir", "spool", "--redis-url", NOWHERE],
    "work": [],
    "reprocess": ["--spool-dir", "spool"],
    "status": ["--spool-dir", "spool"],
    "render": [],
}
EVERY_OPTION = [(name, row) for name, command in COMMANDS.items() for row in command.rows]


def documented_variable(long_flag: str) -> str:
    """The rule as the README states it, written out again so the code cannot drift from it."""
    if long_flag == "--redis-url":
        return "REDIS_URL"
    return "PACS_INGEST_" + long_flag[2:].upper().replace("-", "_")


def parse(command: str, *argv: str) -> argparse.Namespace:
    return parse_args(COMMANDS[command].rows, [*REQUIRED[command], *argv])


def test_the_walk_covers_every_command() -> None:
    assert set(REQUIRED) == set(COMMANDS)
    assert len(EVERY_OPTION) > 100


@pytest.mark.parametrize(("command", "row"), EVERY_OPTION, ids=lambda x: getattr(x, "name", x))
def test_every_option_has_the_variable_of_its_first_long_flag_and_help_shows_it(
    command: str, row: Option, capsys: pytest.CaptureFixture[str]
) -> None:
    long_flag = next(flag for flag in row.flags if flag.startswith("--"))
    assert row.env == documented_variable(long_flag)
    assert main([command, "-h"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"{', '.join(row.flags)}" in help_text
    assert f"[env {documented_variable(long_flag)}]" in help_text


@pytest.mark.parametrize("command", COMMANDS)
def test_no_two_options_of_a_command_share_a_variable(command: str) -> None:
    variables = [row.env for row in COMMANDS[command].rows]
    assert len(variables) == len(set(variables))


@pytest.mark.parametrize(
    ("command", "row"),
    [(name, row) for name, row in EVERY_OPTION if row.kind == "flag"],
    ids=lambda x: getattr(x, "name", x),
)
@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_every_flag_set_by_its_variable_is_as_if_given(
    command: str, row: Option, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = parse(command, row.name)
    assert given != parse(command)
    monkeypatch.setenv(row.env, value)
    assert parse(command) == given


@pytest.mark.parametrize(
    ("command", "argv", "variable", "value"),
    [
        ("receive", ["--max-pdulen-rcv", "4096"], "PACS_INGEST_MAX_PDULEN_RCV", "4096"),
        ("receive", ["--status", "B000H"], "PACS_INGEST_STATUS", "B000H"),
        ("receive", ["--min-free-space", "2G"], "PACS_INGEST_MIN_FREE_SPACE", "2G"),
        ("up", ["--file-mode", "600"], "PACS_INGEST_FILE_MODE", "600"),
        ("up", ["--workers", "3"], "PACS_INGEST_WORKERS", "3"),
        ("work", ["--processes", "3"], "PACS_INGEST_WORKERS", "3"),
        ("work", ["--redis-url", "redis://elsewhere/1"], "REDIS_URL", "redis://elsewhere/1"),
        ("receive", ["--accept", "A", "B"], "PACS_INGEST_ACCEPT", "A B"),
        ("receive", ["--receive-delay", "10", "20"], "PACS_INGEST_RECEIVE_DELAY", "10  20"),
        ("status", ["--expect", "workers"], "PACS_INGEST_EXPECT", "workers"),
        ("reprocess", ["--import", "a", "b"], "PACS_INGEST_IMPORT", "a b"),
        ("receive", ["--tls-cipher", "A", "--tls-cipher", "B"], "PACS_INGEST_TLS_CIPHER", "A B"),
    ],
)
def test_a_value_set_by_its_variable_is_as_if_given(
    command: str, argv: list[str], variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = parse(command, *argv)
    assert given != parse(command)
    monkeypatch.setenv(variable, value)
    assert parse(command) == given


def test_the_command_line_wins_over_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PACS_INGEST_ACCEPT_UNKNOWN", "0")
    monkeypatch.setenv("PACS_INGEST_MAX_BACKLOG", "5")
    args = parse("receive", "--accept-unknown", "--max-backlog", "7")
    assert args.accept_unknown and args.max_backlog == 7


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "PACS_INGEST_MAX_PDULEN_RCV",
            "3",
            "environment variable PACS_INGEST_MAX_PDULEN_RCV: must be 0 or more than 6: '3'",
        ),
        ("PACS_INGEST_RECEIVE_DELAY", "10 x", "PACS_INGEST_RECEIVE_DELAY: invalid number: 'x'"),
        ("PACS_INGEST_TCP_DELAY", "maybe", "PACS_INGEST_TCP_DELAY: 'maybe' is neither"),
    ],
)
def test_a_bad_value_in_a_variable_is_refused_naming_the_variable(
    variable: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(OptionsError) as refused:  # main() exits 2 with it (see test_options)
        parse("receive")
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("command", "argv", "build"),
    [
        ("up", [], ReceiverSettings.from_args),
        ("receive", [], ReceiverSettings.from_args),
        ("up", [], lambda args: WorkerSettings.from_args(args, ("archive",), burst=False)),
        ("work", ["--allow-directory", "archive"], WorkerSettings.from_args),
        ("reprocess", ["--redis-url", NOWHERE], ReprocessSettings.from_args),
    ],
)
def test_every_settings_field_is_filled_from_an_option(
    command: str, argv: list[str], build: Callable[[argparse.Namespace], object]
) -> None:
    assert build(parse(command, *argv)) is not None


def test_a_settings_field_without_an_option_is_named() -> None:
    @dataclass(frozen=True)
    class Settings:
        queue: str
        colour: str

    with pytest.raises(TypeError, match="Settings: no option for colour"):
        from_options(Settings, parse("receive"))
    filled = from_options(Settings, parse("receive", "--queue", "q"), colour="red")
    assert filled == Settings("q", "red")


def test_settings_take_dcm4che_names_and_derived_values() -> None:
    settings = ReceiverSettings.from_args(
        parse("receive", "--not-async", "--max-ops-invoked", "5", "--accept", "A", "B")
    )
    assert settings.accept == ("A", "B")
    assert (settings.network.max_ops_invoked, settings.network.max_ops_performed) == (1, 1)
    assert settings.filing.rename_retries == 3 and settings.modes.file_mode == 0o640


def test_render_reads_its_operands_with_the_same_parser(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["render", "{PatientID}"]) == 2
    assert "missing PATTERN or FILE" in capsys.readouterr().err
    assert main(["render", "--pattern", "x"]) == 2
    assert capsys.readouterr().err == (
        "pacs-ingest: Unrecognized option: --pattern\n"
        "Try `pacs-ingest render --help' for more information.\n"
    )
    with pytest.raises(OptionsError, match="Unrecognized option: -x"):
        parse_args(COMMANDS["render"].rows, ["{PatientID}", "-x"])
    args = parse_args(COMMANDS["render"].rows, ["{PatientID}", "a", "--", "-x"])
    assert args.operands == ["{PatientID}", "a", "-x"]
