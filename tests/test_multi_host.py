"""Several hosts, as deployed: Redis on one, a receiver on a second, workers on a third and a
fourth (Linux network namespaces on a bridge, each its own hostname), the spool and the archive
one shared directory. Objects sent over the network are all filed exactly once, though the worker
host filing them dies (every process SIGKILLed) midway and the other has to finish its work: a
lane has one drain at a time, so the survivor waits for the dead host's lease to expire before
recovery hands it the lane."""

import contextlib
import json
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from benchmarks.corpus import make_corpus
from pacs_ingest.embedded_redis import server_binary
from pacs_ingest.shared import part10
from tests.helpers import ROOT, archive_files, log_entries, wait_until, waiting_objects
from tests.netns import Host, NamespacesUnavailable, hosts

OBJECTS = 400
KILL_AFTER = 100  # objects filed when the first worker host dies
PASSWORD = "multi-host-secret"


def _dataset_bytes(path: Path) -> bytes:
    with open(path, "rb") as fp:
        part10.read_file_meta(fp)
        return fp.read()


def _uid(path: Path) -> str:
    with open(path, "rb") as fp:
        return part10.read_file_meta(fp).media_storage_sop_instance_uid


def _filed(log_path: Path) -> list[dict]:
    """The ingest.filed entries of one host's log, in order."""
    entries = log_entries(log_path.read_text(errors="replace"))
    return [entry for entry in entries if entry.get("event") == "ingest.filed"]


def _filed_by(log_path: Path) -> int:
    return len(_filed(log_path))


def _last_filed_at(log_path: Path) -> str:
    """The timestamp of the last object this host's log says it filed ("" if none)."""
    filed = _filed(log_path)
    return filed[-1]["ts"] if filed else ""


def _pacs_ingest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pacs_ingest", *args]


class Sender(threading.Thread):
    """storescu over the bridge, from the root namespace: what was acknowledged."""

    def __init__(self, folder: Path, receiver: Host) -> None:
        super().__init__(daemon=True)
        self.folder, self.receiver = folder, receiver
        self.acknowledged = 0
        self.output = ""

    def run(self) -> None:
        result = subprocess.run(
            [
                *("storescu", "-v", "+sd", "-aec", "INGEST"),
                *(self.receiver.address, "11112", str(self.folder)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.output = result.stdout + result.stderr
        self.acknowledged = self.output.count("I: Received Store Response (Success)")


@pytest.mark.timeout(120)
def test_a_worker_host_dies_and_the_other_files_everything(tmp_path: Path) -> None:
    sources = make_corpus(tmp_path / "corpus", OBJECTS, size=4096, per_series=50)
    spool, archive, logs = tmp_path / "shared/spool", tmp_path / "shared/archive", tmp_path / "logs"
    logs.mkdir()
    with contextlib.ExitStack() as stack:
        try:
            net = stack.enter_context(hosts(["redis", "receiver", "worker1", "worker2"]))
        except NamespacesUnavailable as exc:
            pytest.skip(f"network namespaces not permitted here: {exc}")
        redis_url = f"redis://:{PASSWORD}@{net['redis'].address}:6379/0"
        net["redis"].start(
            [
                *(server_binary(), "--bind", net["redis"].address, "--port", "6379"),
                *("--requirepass", PASSWORD, "--save", "", "--appendonly", "no"),
                *("--dir", str(tmp_path)),
            ],
            logs / "redis.log",
            ROOT,
        )
        common = ("--redis-url", redis_url)
        net["receiver"].start(
            _pacs_ingest(
                *("receive", "-b", "INGEST:11112", "--receivers", "2", *common),
                *("--spool-dir", str(spool), "--directory", str(archive), "--sweep-interval", "1"),
                *("--filepath", "{00100020}/{0020000D}/{00080018}.dcm"),
            ),
            logs / "receiver.log",
            ROOT,
        )
        for name in ("worker1", "worker2"):
            net[name].start(
                _pacs_ingest(
                    *("work", "--processes", "2", *common),
                    *("--allow-directory", str(tmp_path / "shared")),
                ),
                logs / f"{name}.log",
                ROOT,
            )
        echo = ["echoscu", "-aec", "INGEST", net["receiver"].address, "11112"]
        wait_until(
            lambda: subprocess.run(echo).returncode == 0, 30, "the receiver, over the bridge"
        )

        sender = Sender(tmp_path / "corpus", net["receiver"])
        sender.start()
        wait_until(lambda: len(archive_files(archive)) >= KILL_AFTER, 60, f"{KILL_AFTER} filed")
        # The host that filed last runs the lane's drain now (or did a moment ago).
        dying, surviving = sorted(
            ("worker1", "worker2"), key=lambda name: _last_filed_at(logs / f"{name}.log")
        )[::-1]
        net[dying].kill()
        filed_at_kill = len(archive_files(archive))
        assert net[dying].pids() == []
        sender.join(120)
        assert sender.acknowledged == OBJECTS, sender.output[-2000:]
        wait_until(
            lambda: len(archive_files(archive)) >= OBJECTS and not waiting_objects(spool),
            60,
            f"{surviving} to file the rest",
        )

        filed = Counter(_uid(path) for path in archive_files(archive))
        by_uid = {_uid(path): path for path in archive_files(archive)}
        assert sorted(filed) == sorted(_uid(source) for source in sources)
        assert set(filed.values()) == {1}, "an object was filed twice"
        assert all(_dataset_bytes(by_uid[_uid(s)]) == _dataset_bytes(s) for s in sources)
        assert not any((spool / "failed").iterdir())
        by_dying, by_surviving = (_filed_by(logs / f"{name}.log") for name in (dying, surviving))
        print(
            json.dumps(
                {
                    "filed_at_kill": filed_at_kill,
                    f"filed_by_{dying}_killed": by_dying,
                    f"filed_by_{surviving}": by_surviving,
                }
            )
        )
        assert filed_at_kill < OBJECTS, "all was filed before the kill: nothing was left to take"
        assert by_dying > 0 and by_surviving >= OBJECTS - filed_at_kill
