"""What the benchmark sends: three corpora, and the cases that pair a corpus with a way of
sending it."""

from dataclasses import dataclass

from benchmarks.senders import MODES, Senders


@dataclass(frozen=True)
class Corpus:
    """Objects of about `size` bytes. A `fixed` corpus is sent whole whatever the command line
    says: the 1 GB case is about one object."""

    key: str
    label: str
    size: int
    fixed: bool = False


CORPORA = {
    corpus.key: corpus
    for corpus in (
        Corpus("8k", "8 KB", 8 << 10),
        Corpus("512k", "512 KB", 512 << 10),
        Corpus("1g", "1 GB", 1 << 30, fixed=True),
    )
}


@dataclass(frozen=True)
class Case:
    """The first `count` objects of `corpus`, sent by `senders`."""

    corpus: Corpus
    senders: Senders
    count: int

    @property
    def key(self) -> str:
        return f"{self.corpus.key}-{self.senders.key}"

    @property
    def label(self) -> str:
        return f"{self.corpus.label}, {self.senders.label}"


# An association per object costs pynetdicom's storescp app ~0.25 s of CPU (2-4 objects/s):
# those cases send fewer objects, or one round would take half an hour.
CASES = {
    case.key: case
    for case in (
        Case(CORPORA["8k"], MODES["1"], 2000),
        Case(CORPORA["8k"], MODES["4"], 2000),
        Case(CORPORA["8k"], MODES["per-object"], 400),
        Case(CORPORA["512k"], MODES["1"], 400),
        Case(CORPORA["512k"], MODES["4"], 400),
        Case(CORPORA["512k"], MODES["per-object"], 200),
        Case(CORPORA["1g"], MODES["1"], 1),
    )
}
