"""The deployment files: systemd units that verify and score as hardened, a compose file valid
under the Compose Specification, an image built from pinned dependencies.

tests/schemas/compose-spec.json is the Compose Specification's schema, vendored (CI has no
network guarantee) from github.com/compose-spec/compose-spec, schema/compose-spec.json at commit
170098ba07d9f53c383a41bfd4c5166b0a4529a6.
"""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ruamel.yaml import YAML

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import free_port
from tests.helpers import (
    ROOT,
    archive_files,
    corpus_file,
    pynetdicom_send,
    wait_for_port,
    wait_until,
)

DEPLOY = ROOT / "deploy"
UNITS = ("pacs-ingest-receiver.service", "pacs-ingest-worker@.service")
MAX_EXPOSURE = 3.0
HOST_UNITS = Path("/usr/lib/systemd/system")


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed")
    return found


def _fake_root(tmp_path: Path) -> Path:
    """A file system root holding our units, the host's stock units (the targets every service
    depends on) and an executable at ExecStart's path, for `verify --root`."""
    if not (HOST_UNITS / "sysinit.target").exists():
        pytest.skip(f"no systemd units in {HOST_UNITS} to verify ours against")
    root = tmp_path / "root"
    shutil.copytree(HOST_UNITS, root / "usr/lib/systemd/system", symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(DEPLOY / unit, units / unit)
    program = root / "opt/pacs-ingest/bin/pacs-ingest"
    program.parent.mkdir(parents=True)
    shutil.copy("/bin/true", program)
    return root


def test_the_units_verify_without_a_warning(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    root = _fake_root(tmp_path)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", UNITS[0], "pacs-ingest-worker@1.service"],
        capture_output=True,
        text=True,
    )
    # verify exits 0 on an unknown key or a bad value, only warning: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_is_hardened_to_an_exposure_of_at_most_3(unit: str) -> None:
    analyze = _systemd_analyze()
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(DEPLOY / unit)],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    exposure = float(found.group(1))
    print(f"{unit}: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE, result.stdout
    assert f"exposure: {exposure}" in (DEPLOY / unit).read_text()  # the quoted score is current


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_runs_as_the_dedicated_user_with_umask_0027(unit: str) -> None:
    lines = set((DEPLOY / unit).read_text().splitlines())
    assert {"User=pacs-ingest", "Group=pacs-ingest", "UMask=0027"} <= lines


def test_the_sysusers_file_makes_the_user_with_the_image_uid(tmp_path: Path) -> None:
    sysusers = shutil.which("systemd-sysusers")
    if sysusers is None:
        pytest.skip("systemd-sysusers is not installed")
    (tmp_path / "etc").mkdir()
    config = DEPLOY / "pacs-ingest.sysusers"
    result = subprocess.run(
        [sysusers, f"--root={tmp_path}", str(config)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text()
    assert "pacs-ingest:x:10001:10001:" in passwd and passwd.endswith(":/usr/sbin/nologin\n")
    assert "--uid 10001" in (DEPLOY / "Dockerfile").read_text()


def _option_variables(command: str) -> set[str]:
    text = subprocess.run(
        [sys.executable, "-m", "pacs_ingest", command, "-h"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    return set(re.findall(r"\b(?:PACS_INGEST_[A-Z_]+|REDIS_URL)\b", text))


@pytest.mark.parametrize(
    ("env_file", "command"), [("receiver.env", "receive"), ("worker.env", "work")]
)
def test_the_environment_files_set_only_options_the_command_reads(
    env_file: str, command: str
) -> None:
    names = {
        line.split("=", 1)[0]
        for line in (DEPLOY / env_file).read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert names and names <= _option_variables(command), names - _option_variables(command)


def _compose() -> dict:
    return YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())


def _check_jsonschema(document: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("check-jsonschema")),
            *("--schemafile", str(ROOT / "tests/schemas/compose-spec.json")),
            str(document),
        ],
        capture_output=True,
        text=True,
    )


def test_docker_compose_is_valid_under_the_compose_specification() -> None:
    result = _check_jsonschema(ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_wrong_compose_file(tmp_path: Path) -> None:
    compose = _compose()
    redis = compose["services"]["redis"]
    redis["health_check"] = redis.pop("healthcheck")  # a misspelt key is no health check
    broken = tmp_path / "docker-compose.json"
    broken.write_text(json.dumps(compose))
    result = _check_jsonschema(broken)
    assert result.returncode == 1 and "health_check" in result.stdout, result.stdout


def test_compose_pins_images_checks_health_and_keeps_redis_private() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", image), f"{name}: {image} is not pinned"
        assert service["healthcheck"]["test"], name
    redis = services["redis"]
    assert "ports" not in redis and "requirepass" in " ".join(redis["command"])
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    for name in ("receiver", "worker"):
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), f"{name}: {url}"
    assert _compose()["networks"]["queue"]["internal"] is True


def test_the_image_installs_pinned_dependencies_and_checks_its_health() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "-c deploy/constraints.txt" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n.*pacs_ingest\.healthcheck", dockerfile, re.M)
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim-\w+$", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[ignored.index("*") - 1].startswith("#") and ".env" not in "".join(
        line for line in ignored if line.startswith("!")
    )


def _closure(names: list[str], extras: set[str]) -> set[str]:
    """The distributions `names` need, transitively, under the given extras."""
    seen: set[str] = set()
    while names:
        name = canonicalize_name(names.pop())
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            marker = requirement.marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in extras | {""}):
                names.append(requirement.name)
    return seen


def test_the_constraints_pin_every_dependency_at_the_installed_version() -> None:
    pins = {}
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    needed = _closure(["pacs-ingest"], {"test"}) - {"pacs-ingest"}
    assert needed - set(pins) == set(), "run scripts/lock.sh"
    installed = {name: metadata.version(name) for name in needed}
    assert {name: pins[name] for name in needed} == installed, "run scripts/lock.sh"


def _entrypoint() -> list[str]:
    line = next(
        line
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("ENTRYPOINT ")
    )
    return json.loads(line.removeprefix("ENTRYPOINT "))


def test_the_image_entrypoint_files_objects_readable_by_the_group_only(
    tmp_path: Path, redis_url: str
) -> None:
    """The ENTRYPOINT as the image runs it (without Docker): arguments pass through, and the
    umask leaves patient data unreadable to other users."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    version = subprocess.run(
        [*_entrypoint(), "--version"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert version.stdout.startswith("pacs-ingest: ")
    port = free_port()
    archive = tmp_path / "archive"
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - the child's until it exits
    up = subprocess.Popen(
        [
            *(*_entrypoint(), "up", "-b", f"INGEST:{port}", "--spool-dir", str(tmp_path / "spool")),
            *("--directory", str(archive), "--redis-url", redis_url, "--receivers", "1"),
            *("--filepath", "{00100020}/{00080018}.dcm"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
    )
    log.close()
    try:
        wait_for_port(port)
        (source,) = make_corpus(tmp_path / "corpus", 1)
        assert pynetdicom_send([corpus_file(source)], port, "INGEST") == {source: 0}
        wait_until(lambda: archive_files(archive) != [], 30, "the object in the archive")
    finally:
        up.terminate()
        assert up.wait(20) == 0
    (filed,) = archive_files(archive)
    assert stat.S_IMODE(filed.stat().st_mode) == 0o640
    assert stat.S_IMODE(filed.parent.stat().st_mode) == 0o750
