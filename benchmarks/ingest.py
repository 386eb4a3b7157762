"""Ingest throughput of pacs-ingest against DCMTK, pynetdicom and Orthanc, measured in one run.

    .venv/bin/python -m benchmarks.ingest [--cases ...] [--contenders ...] [--rounds 3]
                                          [--count N] [--json PATH]

Each case pairs a corpus (8 KB or 512 KB objects, or one 1 GB object; made once and kept in the
cache folder) with senders (DCMTK storescu, TCP_NODELAY=1: one association, four, or four senders
opening an association per object). Each contender serves each case once per round, in an order
that rotates from round to round, and every round's output is kept until all rounds are done:
this machine is shared and its speed drifts, and its ext4 (no journal) creates files slowly right
after many were deleted. pacs-ingest (`up`, treated as a black box) is timed until every object
was acknowledged and until every object was at its archive path; the others store before they
answer. Printed: one Markdown table of medians and ranges, ratios to DCMTK, CPU milliseconds per
object per role (pacs-ingest's receivers and workers apart) and the peak RSS of every role.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.cases import CASES, Case
from benchmarks.contenders import ROOT, Contender, all_contenders
from benchmarks.corpus import cached_corpus, default_cache_dir
from benchmarks.run import Run, Trial, measure
from benchmarks.senders import Plan, plan

ISSUE_PATTERN = "{00100020}/{0020000D}/{0020000E}/{00080018}.dcm"
DEFAULT_CONTENDERS = ("dcmtk", "pynetdicom", "orthanc", "pacs-ingest")
EXIT_FAILED = 1
_DISK_MARGIN = 1 << 30  # what the benchmark leaves free for everyone else on the disk
_RENDER_BATCH = 1000


def _choices(known: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        chosen = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in chosen if item not in known]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"{', '.join(unknown) or 'nothing'} chosen; choose from {', '.join(known)}"
            )
        return chosen

    return parse


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description=__doc__.split("\n\n")[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        epilog="A single case in about a minute:\n"
        "  python -m benchmarks.ingest --cases 8k-4 --count 500 --rounds 1\n"
        "Orthanc takes part when it is on PATH (Debian: apt-get install -y orthanc).",
    )
    add = parser.add_argument
    add(
        "--cases",
        metavar="list",
        type=_choices(list(CASES)),
        default=list(CASES),
        help=f"comma-separated, from (and by default): {','.join(CASES)}; a case is a corpus "
        "(8k, 512k, 1g) and senders (1 or 4 associations, or 4 senders opening an association "
        "per object)",
    )
    add(
        "--contenders",
        metavar="list",
        type=_choices(list(DEFAULT_CONTENDERS)),
        help=f"comma-separated, from: {','.join(DEFAULT_CONTENDERS)} (default: all, orthanc "
        "only when installed)",
    )
    add("--rounds", type=_positive, metavar="n", default=3, help="rounds, alternating (default: 3)")
    add(
        "--count",
        metavar="n",
        type=_positive,
        help="objects sent in every case (default: 2000 of 8 KB, 400 of 512 KB; 400 and 200 "
        "with an association per object; the 1 GB case is always one object)",
    )
    add(
        "--receivers",
        type=_positive,
        metavar="n",
        default=2,
        help="pacs-ingest --receivers (default: 2)",
    )
    add(
        "--workers",
        type=_positive,
        metavar="n",
        default=2,
        help="pacs-ingest --workers (default: 2)",
    )
    add(
        "--filepath",
        metavar="pattern",
        default=ISSUE_PATTERN,
        help=f"pacs-ingest --filepath; it must give each object a path of its own (default: "
        f"{ISSUE_PATTERN.replace('%', '%%')})",
    )
    add("--json", type=Path, metavar="PATH", help="write every raw figure and the summary here")
    add(
        "--cache-dir",
        metavar="path",
        type=Path,
        default=default_cache_dir(),
        help="where the corpora are kept between runs (default: %(default)s)",
    )
    add(
        "--work-dir",
        metavar="path",
        type=Path,
        help=f"where the runs store (default: a new folder in {tempfile.gettempdir()}); "
        "deleted at the end unless --keep is given or a run failed",
    )
    add("--keep", action="store_true", help="keep what the runs stored")
    add(
        "--timeout",
        metavar="s",
        type=_positive,
        default=900,
        help="seconds one run may take to send and file its corpus (default: 900)",
    )
    return parser


def _contenders(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Contender]:
    known = all_contenders(receivers=args.receivers, workers=args.workers, filepath=args.filepath)
    if args.contenders is None:
        return [c for c in known.values() if c.key != "orthanc" or c.missing() is None]
    chosen = [known[key] for key in args.contenders]
    for contender in chosen:
        if (why := contender.missing()) is not None:
            parser.error(f"{contender.key} cannot run: {why}")
    return chosen


def _archive_paths(files: list[Path], pattern: str) -> tuple[str, ...]:
    """Where pacs-ingest files each object, as its own `render` command says; ValueError if it
    cannot say, or gives two objects one path (then one would never be seen filed)."""
    paths: list[str] = []
    for start in range(0, len(files), _RENDER_BATCH):
        batch = [str(path) for path in files[start : start + _RENDER_BATCH]]
        done = subprocess.run(
            [sys.executable, "-m", "pacs_ingest", "render", pattern, *batch],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ValueError(f"pacs-ingest render {pattern!r} failed: {done.stderr.strip()}")
        paths.extend(done.stdout.splitlines())
    if len(set(paths)) != len(files):
        raise ValueError(
            f"--filepath {pattern!r} gives {len(files)} objects {len(set(paths))} paths: "
            "the benchmark needs one path per object to see each one filed"
        )
    return tuple(paths)


def _environment() -> dict[str, Any]:
    def first_line(argv: list[str]) -> str | None:
        if not shutil.which(argv[0]):
            return None
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (done.stdout or done.stderr).strip().splitlines()[0]

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "kernel": platform.release(),
        "python": platform.python_version(),
        "pacs_ingest_commit": commit,
        "storescp": first_line(["storescp", "--version"]),
        "orthanc": first_line(["Orthanc", "--version"]),
        "pynetdicom": first_line([sys.executable, "-m", "pynetdicom", "--version"]),
    }


def _preamble(args: argparse.Namespace, counts: dict[str, int], env: dict[str, Any]) -> str:
    objects = ", ".join(f"{key} {count}" for key, count in counts.items())
    return (
        f"pacs-ingest {env['pacs_ingest_commit']} `up --receivers {args.receivers} --workers "
        f"{args.workers} --filepath '{args.filepath}'` (fsync on), timed until acknowledged and "
        f"until filed; {env['cores']} cores, load average {env['load_average_at_start']:.1f} at "
        f"start and {env['load_average_at_end']:.1f} at the end (other work on the machine); "
        f"objects per case: {objects}; "
        f"{args.rounds} alternating round(s), median (range); MB = 10^6 bytes.\n"
    )


@dataclass(frozen=True)
class Setup:
    """Everything the rounds need, made before the first one is timed; keyed by case."""

    cases: list[Case]
    contenders: list[Contender]
    counts: dict[str, int]
    sizes: dict[str, int]
    archive_paths: dict[str, tuple[str, ...]]
    plans: dict[str, Plan]
    work: Path

    def trials(self, rounds: int, timeout: float) -> Iterator[Trial]:
        """Every case with every contender, round after round; the contenders' order rotates."""
        for round_no in range(1, rounds + 1):
            shift = (round_no - 1) % len(self.contenders)
            order = self.contenders[shift:] + self.contenders[:shift]
            for case in self.cases:
                for contender in order:
                    yield Trial(
                        round=round_no,
                        case=case.key,
                        contender=contender,
                        plan=self.plans[case.key],
                        objects=self.counts[case.key],
                        bytes=self.sizes[case.key],
                        run_dir=self.work / f"round-{round_no}" / case.key / contender.key,
                        timeout=timeout,
                        archive_paths=self.archive_paths[case.key] if contender.files_later else (),
                    )


def prepare(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Setup:
    """Check the tools, make or find the corpora, learn their archive paths, check the disk."""
    for tool in ("storescu", "echoscu"):
        if not shutil.which(tool):
            parser.error(f"{tool} not on PATH: the senders are DCMTK's (Debian package dcmtk)")
    contenders = _contenders(args, parser)
    cases = [CASES[key] for key in args.cases]
    counts = {c.key: c.count if c.corpus.fixed else args.count or c.count for c in cases}
    corpora = {c.corpus.key: c.corpus for c in cases}
    files = {
        key: cached_corpus(
            args.cache_dir,
            max(counts[c.key] for c in cases if c.corpus is corpus),
            size=corpus.size,
        )
        for key, corpus in corpora.items()
    }
    sent = {c.key: files[c.corpus.key][: counts[c.key]] for c in cases}
    sizes = {key: sum(path.stat().st_size for path in found) for key, found in sent.items()}
    archive_paths = {}
    if any(contender.files_later for contender in contenders):
        try:
            rendered = {key: _archive_paths(got, args.filepath) for key, got in files.items()}
        except ValueError as exc:
            parser.error(str(exc))
        archive_paths = {c.key: rendered[c.corpus.key][: counts[c.key]] for c in cases}
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="pacs-ingest-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    needed = sum(sizes.values()) * len(contenders) * args.rounds
    free = shutil.disk_usage(work).free
    if free < needed + _DISK_MARGIN:
        parser.error(
            f"the runs need about {needed / 1e9:.1f} GB in {work} and {free / 1e9:.1f} GB are "
            "free: choose fewer --cases, --rounds or --contenders, or another --work-dir"
        )
    plans = {c.key: plan(c.senders, sent[c.key], work / "senders" / c.key) for c in cases}
    return Setup(cases, contenders, counts, sizes, archive_paths, plans, work)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    setup = prepare(args, parser)
    env = _environment()
    runs = []
    for trial in setup.trials(args.rounds, args.timeout):
        run = measure(trial)
        print(_progress(args, run), file=sys.stderr, flush=True)
        runs.append(run)
    env["load_average_at_end"] = os.getloadavg()[0]
    table = report.lines(setup.cases, setup.contenders, runs)
    print(_preamble(args, setup.counts, env))
    print(report.markdown(table, runs), end="")
    if args.json:
        raw = {
            "environment": env,
            "settings": {**vars(args), "counts": setup.counts, "bytes": setup.sizes},
            "summary": report.summary(table, runs),
            "runs": [asdict(run) for run in runs],
        }
        args.json.write_text(json.dumps(raw, indent=2, default=str) + "\n")
    failed = [run for run in runs if run.error]
    if failed or args.keep:
        print(f"\nwhat the runs stored is kept in {setup.work}", file=sys.stderr)
    else:
        shutil.rmtree(setup.work)
    return EXIT_FAILED if failed else 0


def _progress(args: argparse.Namespace, run: Run) -> str:
    head = f"round {run.round}/{args.rounds}  {run.case:<16} {run.contender:<12}"
    if run.error:
        return f"{head} FAILED: {run.error}"
    seconds = run.filed_s or run.acknowledged_s or 0.0
    timed = f"{run.acknowledged_s:.2f} s acknowledged"
    if run.filed_s is not None:
        timed += f", {run.filed_s:.2f} s filed"
    rate = f"{run.objects / seconds:,.2f} objects/s, {run.bytes / 1e6 / seconds:,.1f} MB/s"
    return f"{head} {timed}  ({rate})"


if __name__ == "__main__":
    sys.exit(main())
