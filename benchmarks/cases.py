"""What the benchmark sends: three corpora, and the cases that pair a corpus with a way of
sending it."""

from dataclasses import dataclass

from benchmarks.senders import MODES, Senders


@dataclass(frozen=True)
class Corpus:
    """Objects of about `size` bytes; `count` of them unless the command line says otherwise
    (never for a `fixed` corpus: the 1 GB case is about one object)."""

    key: str
    label: str
    size: int
    count: int
    fixed: bool = False


CORPORA = {
    corpus.key: corpus
    for corpus in (
        Corpus("8k", "8 KB", 8 << 10, 2000),
        Corpus("512k", "512 KB", 512 << 10, 400),
        Corpus("1g", "1 GB", 1 << 30, 1, fixed=True),
    )
}


@dataclass(frozen=True)
class Case:
    corpus: Corpus
    senders: Senders

    @property
    def key(self) -> str:
        return f"{self.corpus.key}-{self.senders.key}"

    @property
    def label(self) -> str:
        return f"{self.corpus.label}, {self.senders.label}"


CASES = {
    case.key: case
    for case in (
        *(Case(CORPORA["8k"], mode) for mode in MODES.values()),
        *(Case(CORPORA["512k"], mode) for mode in MODES.values()),
        Case(CORPORA["1g"], MODES["1"]),
    )
}
