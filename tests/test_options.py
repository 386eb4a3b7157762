"""The command line is read as dcm4che's storescp reads it (commons-cli), without a process."""

import argparse
from importlib import metadata

import pytest

from pacs_ingest.cli import COMMANDS, main
from pacs_ingest.receiver import properties, sop_classes
from pacs_ingest.receiver.options import Bind, ReceiverSettings, parse_bind
from pacs_ingest.shared.options import ConfigError, OptionsError, dicom_int, parse_args

ROWS = COMMANDS["receive"].rows
REQUIRED = ["-b", "104", "--spool-dir", "spool", "--redis-url", "redis://localhost/0"]


def parse(*argv: str) -> argparse.Namespace:
    return parse_args(ROWS, [*REQUIRED, *argv])


def refused(*argv: str) -> str:
    with pytest.raises(OptionsError) as caught:
        parse_args(ROWS, list(argv))
    return str(caught.value)


class TestTokens:
    def test_long_options_take_a_value_after_a_space_or_an_equals_sign(self) -> None:
        assert parse("--status", "5").status == 5
        assert parse("--status=5").status == 5

    def test_the_short_bind_option_takes_its_value_attached(self) -> None:
        args = parse_args(ROWS, ["-bSCP:105", "--spool-dir", "s", "--redis-url", "r"])
        assert args.bind == Bind("SCP", "", 105)

    def test_long_options_are_never_abbreviated(self) -> None:
        assert refused(*REQUIRED, "--stat", "5") == "Unrecognized option: --stat"

    def test_an_unknown_option_is_refused(self) -> None:
        assert (
            refused(*REQUIRED, "--connect-timeout", "5") == "Unrecognized option: --connect-timeout"
        )

    def test_positional_arguments_and_everything_after_a_double_dash_are_ignored(self) -> None:
        assert parse("stray", "--", "--whatever").status == 0

    def test_a_value_option_at_the_end_misses_its_argument(self) -> None:
        assert refused(*REQUIRED, "--status") == "Missing argument for option: status"

    def test_a_value_option_followed_by_a_known_option_misses_its_argument(self) -> None:
        assert refused(*REQUIRED, "--status", "--ignore") == "Missing argument for option: status"


class TestMultiValueOptions:
    def test_are_greedy_and_swallow_unknown_options(self) -> None:
        args = parse("--accept", "A", "--foo", "B", "--status", "5")
        assert args.accept == ["A", "--foo", "B"]
        assert args.status == 5

    def test_stop_at_a_known_option_in_any_of_its_forms(self) -> None:
        assert parse("--accept", "A", "--status=5").accept == ["A"]
        assert parse_args(ROWS, ["--accept", "A", "-b104", *REQUIRED[2:]]).accept == ["A"]

    def test_accumulate_when_repeated(self) -> None:
        args = parse("--receive-delay", "1", "2", "--ignore", "--receive-delay", "3")
        assert args.receive_delay == [1, 2, 3]

    def test_are_not_split_on_commas(self) -> None:
        assert refused(*REQUIRED, "--receive-delay", "10,20") == (
            "--receive-delay: invalid number: '10,20'"
        )

    def test_take_negative_numbers(self) -> None:
        assert parse("--response-delay", "-5", "10").response_delay == [-5, 10]


class TestRepeatedOptions:
    def test_the_first_value_of_a_single_value_option_wins(self) -> None:
        assert parse("--status", "1", "--status", "2").status == 1

    def test_tls_cipher_and_tls_protocol_keep_every_occurrence(self) -> None:
        args = parse("--tls-cipher", "A", "--tls-cipher", "B", "--tls-protocol", "TLSv1.3")
        assert args.tls_cipher == ["A", "B"]
        assert args.tls_protocol == ["TLSv1.3"]


class TestNumbers:
    @pytest.mark.parametrize(
        ("text", "value"), [("10", 10), ("+7", 7), ("-3", -3), ("A700H", 0xA700), ("10H", 16)]
    )
    def test_are_decimal_or_hex_with_an_h(self, text: str, value: int) -> None:
        assert dicom_int(text) == value

    @pytest.mark.parametrize("text", ["0x10", " 1", "", "10h", "2147483648", "1.5"])
    def test_anything_else_is_refused(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError):
            dicom_int(text)

    def test_a_pending_status_is_refused(self) -> None:
        assert "Pending" in refused(*REQUIRED, "--status", "FF00H")

    def test_negative_sizes_and_delays_are_refused(self) -> None:
        assert "must not be negative" in refused(*REQUIRED, "--soclose-delay", "-1")
        assert "must not be negative" in refused(*REQUIRED, "--sosnd-buffer", "-1")
        assert "must not be negative" in refused(*REQUIRED, "--rename-retries", "-1")


class TestRequiredOptions:
    def test_a_missing_bind_is_named_as_the_reference_names_it(self) -> None:
        assert refused("--spool-dir", "s", "--redis-url", "r") == "missing required option -b"

    def test_help_and_version_are_answered_without_them(self) -> None:
        assert parse_args(ROWS, ["-h"]).help
        assert parse_args(ROWS, ["-V"]).version

    def test_help_is_not_answered_for_a_command_line_that_does_not_scan(self) -> None:
        assert refused("-h", "--foo") == "Unrecognized option: --foo"

    def test_an_environment_variable_stands_in_for_an_option(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PACS_INGEST_BIND", "ENV:106")
        args = parse_args(ROWS, ["--spool-dir", "s", "--redis-url", "r"])
        assert args.bind == Bind("ENV", "", 106)


class TestBind:
    @pytest.mark.parametrize(
        ("text", "bind"),
        [
            ("104", Bind(None, "", 104)),
            ("*:104", Bind(None, "", 104)),
            ("SCP:104", Bind("SCP", "", 104)),
            ("SCP@10.0.0.1:104", Bind("SCP", "10.0.0.1", 104)),
            ("SCP@:104", Bind("SCP", "127.0.0.1", 104)),
            ("SCP@host:name:104", None),
        ],
    )
    def test_splits_at_the_first_colon_then_at_the_first_at_sign(
        self, text: str, bind: Bind | None
    ) -> None:
        if bind is None:
            with pytest.raises(argparse.ArgumentTypeError):
                parse_bind(text)
        else:
            assert parse_bind(text) == bind

    @pytest.mark.parametrize("text", ["@1.2.3.4:104", "0", "65536", "SCP:", "x"])
    def test_refuses_an_ip_without_ae_title_and_ports_out_of_range(self, text: str) -> None:
        with pytest.raises(argparse.ArgumentTypeError):
            parse_bind(text)


class TestCommand:
    def test_receive_help_lists_every_option_with_its_default(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["receive", "-h"]) == 0
        text = capsys.readouterr().out
        for row in ROWS:
            assert ", ".join(row.flags) in text, row.flags
        for default in ("(default: 16378)", "(default: 50)", "(default: PKCS12)", "(default: 3)"):
            assert default in text
        assert "(default: resource:sop-classes.properties)" in text

    def test_version_names_the_program(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["receive", "-V"]) == 0
        assert capsys.readouterr().out == f"pacs-ingest: {metadata.version('pacs-ingest')}\n"

    def test_a_bad_option_exits_2_with_a_message_and_a_hint(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["receive", "--foo"]) == 2
        assert capsys.readouterr().err == (
            "pacs-ingest: Unrecognized option: --foo\n"
            "Try `pacs-ingest receive --help' for more information.\n"
        )


class TestSopClassesFile:
    def test_java_properties_syntax_is_understood(self) -> None:
        text = "# c\n! c\n  a.b = x\\\n   y\nkey\\:colon:v\nu:\\u0041\nspace value\n"
        assert [(e.key, e.value) for e in properties.parse(text)] == [
            ("a.b", "xy"),
            ("key:colon", "v"),
            ("u", "A"),
            ("space", "value"),
        ]

    def test_keywords_resolve_to_uids_and_star_means_any(self) -> None:
        table = sop_classes.parse(
            b"CTImageStorage: ImplicitVRLittleEndian , 1.2.840.10008.1.2.1\n1.2.3:*\n", "f"
        )
        assert table == {
            "1.2.840.10008.5.1.4.1.1.2": frozenset({"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}),
            "1.2.3": None,
        }

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("CTImageStorag:*", "line 1: unknown SOP class 'CTImageStorag'"),
            ("CTImageStorage:", "line 1: no transfer syntax for CTImageStorage"),
            ("CTImageStorage:ImplicitVRLittleEndian,", "line 1: empty transfer syntax"),
            ("\n\nCTImageStorage:Implicit", "line 3: unknown transfer syntax 'Implicit'"),
        ],
    )
    def test_a_bad_entry_is_a_configuration_error_naming_its_line(
        self, text: str, message: str
    ) -> None:
        with pytest.raises(ConfigError, match=message):
            sop_classes.parse(text.encode(), "f")

    def test_the_default_list_is_the_references(self) -> None:
        table = sop_classes.load()
        assert len(table) == 169
        assert table["1.2.840.10008.1.1"] == frozenset({"1.2.840.10008.1.2"})  # Verification
        assert table["1.2.840.10008.4.2"] is None  # Storage service class, any TS
        assert table["1.2.40.0.13.1.5.1.4.1.1.104.3"] is None  # private dcm4che class
        assert all(ts is None for uid, ts in table.items() if uid != "1.2.840.10008.1.1")

    def test_accept_unknown_does_not_read_the_file(self) -> None:
        args = parse("--accept-unknown", "--sop-classes", "/nonexistent")
        assert ReceiverSettings.from_args(args).capabilities == {"*": None}
        with pytest.raises(ConfigError, match="/nonexistent"):
            ReceiverSettings.from_args(parse("--sop-classes", "/nonexistent"))
