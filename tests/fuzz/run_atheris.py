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
from collections.abc import Callable

import atheris

with atheris.instrument_imports(
    include=["pacs_ingest.receiver", "pacs_ingest.shared.part10", "pacs_ingest.shared.spool"]
):
    from tests.fuzz.association_harness import association
    from tests.fuzz.harnesses import HARNESSES, Violation

ALL = {**HARNESSES, "association": association}


def _reporting_base_exceptions(harness: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """atheris reports an Exception with its traceback, but a BaseException (CancelledError,
    SystemExit, KeyboardInterrupt) just ends the process: turn it into a reported finding."""

    def run(data: bytes) -> None:
        try:
            harness(data)
        except Exception:
            raise
        except BaseException as exc:
            raise Violation(f"{type(exc).__name__} escaped: {exc!r}") from exc

    return run


def main() -> None:
    name, options = sys.argv[1], sys.argv[2:]
    harness = _reporting_base_exceptions(ALL[name])
    warnings.simplefilter("ignore")  # pydicom warns about every odd UID pynetdicom decodes
    logging.disable(logging.CRITICAL)
    atheris.Setup([sys.argv[0], *options], harness)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
