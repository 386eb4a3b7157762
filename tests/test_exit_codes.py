"""The exit codes are one table: the README's "Exit codes" table is shared.exit_codes."""

import re

from pacs_ingest.shared.exit_codes import ExitCode
from pacs_ingest.status import EXIT_CODES_HELP
from tests.helpers import ROOT

SECTION = (ROOT / "README.md").read_text().split("### Exit codes", 1)[1].split("\n#", 1)[0]


def _readme_rows() -> list[tuple[int, str, str]]:
    """(exit, name, meaning) of each row of the README's table."""
    rows = []
    for line in SECTION.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((int(cells[0]), cells[1].strip("`"), cells[2]))
    return rows


def test_the_readme_lists_every_exit_code_as_the_table_names_it() -> None:
    assert _readme_rows() == [(code.value, code.name, code.meaning) for code in ExitCode]


def test_status_help_gives_each_problem_its_code() -> None:
    for code in range(ExitCode.REDIS_UNREACHABLE, ExitCode.LOW_SPACE + 1):
        assert f"; {code} " in EXIT_CODES_HELP
