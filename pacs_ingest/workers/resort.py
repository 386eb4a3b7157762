"""Re-sorting an archive in place into a new --filepath, safe to SIGKILL at any instant and rerun.

Each archived file whose new path differs from where it is gets renamed into the spool lane of
the new filing, then the workers file it at its new path, as any spooled object. A rename
neither copies nor deletes: at every instant the object is in exactly one place, the archive's
old path, ready/ or its new path, so nothing is ever removed before its new copy is durable. (An
archive on another file system than the spool is copied and fsynced in, and only then removed;
a kill in between leaves an identical copy, which the default --duplicates keep-both drops.)

A rerun walks the archive again. Files already at their new path are left alone, as are files
whose status changed after the run began (a rename sets it): those are the ones this run's
workers have just filed, met again by the walk. What a killed run left in ready/ is filed by the
workers, queued by recovery if its push was lost.

Files that are not DICOM, or that cannot be rendered into the new pattern, stay where they are
and are counted (the first as "not DICOM", the second as errors, each logged).
"""

import random
import time
from collections.abc import Callable
from pathlib import Path

from pacs_ingest.shared import log, part10
from pacs_ingest.workers.admission import Run
from pacs_ingest.workers.ingest import QUARANTINABLE, target_path


def resort_one(started_at: float) -> Callable[[Run, Path], None]:
    """A handler for one archived file of a run that began at `started_at` (time.time())."""
    rng = random.Random()

    def resort(run: Run, path: Path) -> None:
        if path.stat().st_ctime >= started_at or path.is_relative_to(run.spool.root):
            run.counts.found -= 1  # filed by this run, or not the archive's
            return
        if not part10.is_part10_file(path):
            run.counts.not_dicom += 1
            return
        try:
            target = target_path(path, run.filing, rng)
        except QUARANTINABLE as exc:
            run.counts.errors += 1
            log.warning("resort.cannot_render", path=str(path), error=str(exc))
            return
        if target == path:
            run.counts.in_place += 1
            return
        ref = run.spool.admit(path, run.lane, move=True, now=time.time())
        run.admission.add(ref, now=time.monotonic())

    return resort
