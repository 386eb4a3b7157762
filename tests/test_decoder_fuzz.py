"""The CI slice of the decoder fuzzing: thousands of seeded mutants of real traffic (the seeds in
tests/fuzz/seeds/, captured from DCMTK and pynetdicom) through each harness of `tests.fuzz`; the
long coverage-guided campaign is `benchmarks/fuzz_campaign.py`."""

import logging
import warnings
from pathlib import Path

import pytest

from tests.fuzz.association_harness import association
from tests.fuzz.harnesses import associate_rq, command_set, framer
from tests.fuzz.mutate import inputs

SEEDS = Path(__file__).parent / "fuzz" / "seeds"


@pytest.fixture(autouse=True)
def quiet():
    """pydicom warns about each odd UID; the receiver logs each bad PDU: not what is tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.CRITICAL)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def _seeds(kind: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((SEEDS / kind).iterdir())]


@pytest.mark.parametrize(
    ("harness", "kind", "count"),
    [
        (framer, "stream", 3000),
        (associate_rq, "rq", 2000),
        (command_set, "command", 5000),
        (association, "stream", 1500),
    ],
    ids=["framer", "associate_rq", "command_set", "association"],
)
def test_mutants_of_real_traffic_break_no_property(harness, kind: str, count: int) -> None:
    for number, data in enumerate(inputs(_seeds(kind), count, seed=20261201)):
        try:
            harness(data)
        except Exception as exc:
            raise AssertionError(f"input {number} ({data[:64].hex()}...): {exc!r}") from exc
