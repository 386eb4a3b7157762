"""The distribution installs one top-level import package, `pacs_ingest`, and its console script.

Top-level packages named `shared`, `receiver` or `workers` would collide with anything else of
those names in a user's environment, so a fresh virtualenv is checked before and after the
install.
"""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from tests.helpers import ROOT


def _top_level(site_packages: Path) -> set[str]:
    return {entry.name for entry in site_packages.iterdir() if entry.name != "__pycache__"}


def test_a_fresh_install_adds_one_import_package_and_a_working_console_script(
    tmp_path: Path,
) -> None:
    home = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(home)
    python = home / "bin" / "python"
    site_packages = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    before = _top_level(site_packages)
    # The dependencies come from the suite's own environment (below), so no index is needed.
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(ROOT)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    added = _top_level(site_packages) - before
    assert {name for name in added if not name.endswith(".dist-info")} == {"pacs_ingest"}, added
    assert len(added) == 2, added

    # The installed copy, not the checkout, must answer: run outside the checkout, with the
    # suite's site-packages after the fresh one for the dependencies only.
    env = {**os.environ, "PYTHONPATH": sysconfig.get_paths()["purelib"]}
    result = subprocess.run(
        [home / "bin" / "pacs-ingest", "render", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    where = subprocess.check_output(
        [python, "-c", "import pacs_ingest.workers.drain as d; print(d.__file__)"],
        cwd=tmp_path,
        env=env,
        text=True,
    )
    assert where.startswith(str(site_packages)), where
    assert sys.prefix not in where
