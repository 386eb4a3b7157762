"""Progress of `reprocess`: a live bar on a terminal (rich), plain lines on a pipe or in a log.

A migration runs for hours; whoever started it wants to see it move, and whoever reads its log
later wants lines without control codes. Both show the same counts, and the summary at the end
is printed the same way either way.
"""

import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

PLAIN_EVERY_S = 1.0


@dataclass(slots=True)
class Counts:
    found: int = 0  # files seen
    enqueued: int = 0  # put into the spool and queued for filing
    not_dicom: int = 0  # left alone: not a DICOM Part 10 file
    errors: int = 0  # could not be read, moved or rendered (each one logged)
    in_place: int = 0  # --resort: already at its new path

    def line(self) -> str:
        return (
            f"found {self.found}, enqueued {self.enqueued}, not DICOM {self.not_dicom}, "
            f"errors {self.errors}"
            + (f", already in place {self.in_place}" if self.in_place else "")
        )


class ProgressReport:
    """Shows `counts` as they change; a rich bar if `stream` is a terminal, else a line a second."""

    def __init__(self, counts: Counts, stream: TextIO = sys.stderr, *, now: float) -> None:
        self.counts = counts
        self._stream = stream
        self._next_line_at = now + PLAIN_EVERY_S
        self._bar: Progress | None = None
        if stream.isatty():
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("reprocess"),
                BarColumn(),
                TextColumn("{task.completed} files"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(file=stream),
                refresh_per_second=4,
            )
            self._task = self._bar.add_task("", total=None)

    def __enter__(self) -> "ProgressReport":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self.update(now=time.monotonic())
            self._bar.stop()

    def update(self, *, now: float) -> None:
        """Called after each file; `now` is a time.monotonic() reading."""
        if self._bar is not None:
            c = self.counts
            self._bar.update(
                self._task,
                completed=c.found,
                description=f"enqueued {c.enqueued} · not DICOM {c.not_dicom} · errors {c.errors}",
            )
        elif now >= self._next_line_at:
            self._next_line_at = now + PLAIN_EVERY_S
            print(f"reprocess: {self.counts.line()}", file=self._stream, flush=True)
