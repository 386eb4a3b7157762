"""The long coverage-guided campaign over the receiver's decoders (atheris, in process).

    python -m benchmarks.fuzz_campaign [--runs framer=300000 ...] [--seed 1] [--keep DIR]

Runs each harness of `tests.fuzz` (framer, associate_rq, command_set, association) in its own
atheris process, from a copy of its committed seeds (`tests/fuzz/seeds/`: what DCMTK and
pynetdicom send), and prints per harness: inputs run, crashes, coverage (libFuzzer's edges and
features), the corpus it grew, and peak RSS. A crash leaves its input as `crash-*` in the working
folder (kept with --keep), and the campaign exits 1.
"""

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "tests" / "fuzz" / "seeds"
# harness: (seed folder, inputs in the default campaign)
HARNESSES = {
    "framer": ("stream", 300_000),
    "associate_rq": ("rq", 300_000),
    "command_set": ("command", 400_000),
    "association": ("stream", 100_000),
}


def run_harness(name: str, runs: int, seed: int, work: Path) -> dict[str, object]:
    corpus = work / name / "corpus"
    artifacts = work / name / "artifacts"
    shutil.copytree(SEEDS / HARNESSES[name][0], corpus)
    artifacts.mkdir()
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run_atheris",
            name,
            f"-runs={runs}",
            f"-seed={seed}",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            "-rss_limit_mb=1024",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,  # a crash is a result to report
    )
    output = result.stderr + result.stdout  # atheris prints a finding's traceback on stdout
    (work / name / "libfuzzer.log").write_text(output)
    done = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", output)
    executed = re.search(r"stat::number_of_executed_units: (\d+)", output)
    peak = re.search(r"stat::peak_rss_mb:\s+(\d+)", output)
    crashes = sorted(path.name for path in artifacts.iterdir())
    return {
        "harness": name,
        "inputs": int(executed.group(1)) if executed else 0,
        "crashes": len(crashes) or (0 if result.returncode == 0 else 1),
        "edges": int(done[-1][0]) if done else 0,
        "features": int(done[-1][1]) if done else 0,
        "corpus": int(done[-1][2]) if done else 0,
        "peak_rss_mb": int(peak.group(1)) if peak else 0,
        "seconds": round(time.monotonic() - started),
        "exit": result.returncode,
        "tail": output.strip().splitlines()[-12:] if result.returncode else [],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs",
        nargs="*",
        default=[],
        metavar="HARNESS=N",
        help="inputs per harness (default: "
        + ", ".join(f"{k}={v[1]}" for k, v in HARNESSES.items())
        + ")",
    )
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed")
    parser.add_argument("--keep", type=Path, help="keep corpora, logs and crashes here")
    args = parser.parse_args()
    runs = {name: default for name, (_, default) in HARNESSES.items()}
    for item in args.runs:
        name, _, count = item.partition("=")
        if name not in runs:
            parser.error(f"unknown harness {name!r}: one of {', '.join(runs)}")
        runs[name] = int(count)
    work = Path(tempfile.mkdtemp(prefix="fuzz-campaign-")) if args.keep is None else args.keep
    work.mkdir(parents=True, exist_ok=True)
    rows = [run_harness(name, count, args.seed, work) for name, count in runs.items() if count]
    print(
        f"{'harness':<14}{'inputs':>10}{'crashes':>9}{'edges':>7}{'features':>10}"
        f"{'corpus':>8}{'peak RSS':>10}{'s':>6}"
    )
    for row in rows:
        print(
            f"{row['harness']:<14}{row['inputs']:>10}{row['crashes']:>9}{row['edges']:>7}"
            f"{row['features']:>10}{row['corpus']:>8}{row['peak_rss_mb']:>8}MB{row['seconds']:>6}"
        )
        for line in row["tail"]:
            print("    " + line)
    total = sum(int(row["inputs"]) for row in rows)
    crashes = sum(int(row["crashes"]) for row in rows)
    print(f"total: {total} inputs, {crashes} crashes; working folder {work}")
    if args.keep is None and not crashes:
        shutil.rmtree(work)
    sys.exit(1 if crashes else 0)


if __name__ == "__main__":
    main()
