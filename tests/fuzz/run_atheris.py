"""Run one harness under atheris (libFuzzer's coverage-guided mutation of Python code).

    python -m tests.fuzz.run_atheris HARNESS [libFuzzer options] [CORPUS_DIR ...]

HARNESS is framer, associate_rq, command_set or association. The receiver's modules are
instrumented for coverage; libFuzzer's options apply (`-runs=N`, `-seed=S`, `-max_len=N`,
`-print_final_stats=1`, ...), and new inputs are written to the first corpus folder. A property
broken or an exception raised is a crash: libFuzzer writes the input to `crash-<sha1>` and exits
non-zero. `benchmarks/fuzz_campaign.py` runs every harness this way.
"""

import logging
import sys
import warnings

import atheris

with atheris.instrument_imports(include=["receiver", "shared.part10", "shared.spool"]):
    from tests.fuzz.association_harness import association
    from tests.fuzz.harnesses import HARNESSES

ALL = {**HARNESSES, "association": association}


def main() -> None:
    name, options = sys.argv[1], sys.argv[2:]
    harness = ALL[name]
    warnings.simplefilter("ignore")  # pydicom warns about every odd UID pynetdicom decodes
    logging.disable(logging.CRITICAL)
    atheris.Setup([sys.argv[0], *options], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
