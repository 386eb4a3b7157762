"""Ingest throughput of pacs-ingest against DCMTK's storescp, measured in one run.

    python -m benchmarks.ingest [--count 2000] [--bytes 8192] [--associations 4]
                                [--receivers 2] [--workers 1]

Generates a corpus (benchmarks.corpus), splits it over N parallel DCMTK storescu senders (one
association each, TCP_NODELAY=1), and sends it first to `storescp --fork` (the yardstick: writes
each object to a file, no fsync, no queue), then to `pacs-ingest up` (fsynced spool, Redis queue,
workers filing into the archive). pacs-ingest is timed twice: until every object was acknowledged
(the senders are done) and until every object was filed in the archive. The two alternate for
--repeat rounds, since this machine's speed drifts; the medians are printed: objects/s, MB/s and
the ratios to storescp.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.corpus import make_corpus

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Result:
    name: str
    objects: int
    seconds: float
    megabytes: float

    @property
    def rate(self) -> float:
        return self.objects / self.seconds

    @property
    def throughput(self) -> float:
        return self.megabytes / self.seconds

    def line(self, yardstick: "Result | None" = None) -> str:
        ratio = f"  x{self.rate / yardstick.rate:5.2f}" if yardstick else ""
        return (
            f"{self.name:<28} {self.objects:>6} objects {self.seconds:8.2f} s "
            f"{self.rate:9.1f} obj/s {self.throughput:8.1f} MB/s{ratio}"
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def _count_files(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def _split(corpus: list[Path], parts: int, workdir: Path) -> list[Path]:
    folders = [workdir / f"sender-{i}" for i in range(parts)]
    for folder in folders:
        folder.mkdir()
    for index, path in enumerate(corpus):
        (folders[index % parts] / path.name).symlink_to(path)
    return folders


def _send(folders: list[Path], port: int) -> float:
    """Run one storescu per folder in parallel; seconds until all are done."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    start = time.monotonic()
    senders = [
        subprocess.Popen(
            ["storescu", "-aec", "INGEST", "+sd", "127.0.0.1", str(port), str(folder)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for folder in folders
    ]
    for sender in senders:
        _, err = sender.communicate()
        if sender.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return time.monotonic() - start


def run_storescp(folders: list[Path], count: int, megabytes: float, workdir: Path) -> Result:
    out = workdir / "storescp-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    port = _free_port()
    scp = subprocess.Popen(
        ["storescp", "--fork", "-od", str(out), str(port)],
        env={**os.environ, "TCP_NODELAY": "1"},  # as the senders: Nagle would stall replies
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        seconds = _send(folders, port)
    finally:
        scp.send_signal(signal.SIGTERM)
        scp.wait()
    stored = _count_files(out)
    if stored != count:
        raise RuntimeError(f"storescp stored {stored} of {count}")
    return Result("dcmtk storescp --fork", count, seconds, megabytes)


def run_pacs_ingest(
    folders: list[Path], count: int, megabytes: float, workdir: Path, args: argparse.Namespace
) -> tuple[Result, Result]:
    archive, spool = workdir / "archive", workdir / "spool"
    shutil.rmtree(archive, ignore_errors=True)
    shutil.rmtree(spool, ignore_errors=True)
    port = _free_port()
    log = open(workdir / "pacs-ingest.log", "wb")  # noqa: SIM115 - lives as long as the child
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pacs_ingest",
            "up",
            "-b",
            f"INGEST:{port}",
            "--directory",
            str(archive),
            "--spool-dir",
            str(spool),
            "--receivers",
            str(args.receivers),
            "--workers",
            str(args.workers),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port)
        time.sleep(3)  # let every receiver and worker process finish importing
        start = time.monotonic()
        acked = _send(folders, port)
        while _count_files(archive) < count:
            if up.poll() is not None:
                raise RuntimeError("pacs-ingest exited; see " + str(workdir / "pacs-ingest.log"))
            time.sleep(0.02)
        filed = time.monotonic() - start
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(30)
        log.close()
    return (
        Result("pacs-ingest (acknowledged)", count, acked, megabytes),
        Result("pacs-ingest (filed)", count, filed, megabytes),
    )


def _median(results: list[Result]) -> Result:
    return sorted(results, key=lambda result: result.seconds)[len(results) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="objects to send")
    parser.add_argument("--bytes", type=int, default=8192, help="approximate object size")
    parser.add_argument("--associations", type=int, default=4, help="parallel storescu senders")
    parser.add_argument("--receivers", type=int, default=2, help="pacs-ingest receivers")
    parser.add_argument("--workers", type=int, default=1, help="pacs-ingest workers")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds, alternating the two; medians are shown"
    )
    args = parser.parse_args()
    if not shutil.which("storescu") or not shutil.which("storescp"):
        parser.error("DCMTK's storescu and storescp are needed (Debian package dcmtk)")
    with tempfile.TemporaryDirectory(prefix="pacs-ingest-bench-") as tmp:
        workdir = Path(tmp)
        corpus = make_corpus(workdir / "corpus", args.count, size=args.bytes)
        megabytes = sum(p.stat().st_size for p in corpus) / 1e6
        folders = _split(corpus, args.associations, workdir)
        print(
            f"{args.count} objects of {megabytes / args.count * 1000:.0f} KB, "
            f"{args.associations} associations, pacs-ingest with {args.receivers} receivers "
            f"and {args.workers} workers, {os.cpu_count()} cores"
        )
        rounds = []
        for _ in range(args.repeat):
            rounds.append(
                (
                    run_storescp(folders, args.count, megabytes, workdir),
                    *run_pacs_ingest(folders, args.count, megabytes, workdir, args),
                )
            )
        yardstick, acked, filed = (_median([r[i] for r in rounds]) for i in range(3))
        print(yardstick.line())
        print(acked.line(yardstick))
        print(filed.line(yardstick))


if __name__ == "__main__":
    main()
