"""What a worker process may do, decided by whoever started it rather than by the jobs it runs.

A job carries the spool, the archive root and the pattern, so one worker pool serves many
receivers; but anyone who can write to Redis can enqueue a job. The limits that must not come
from Redis (the directories a worker may touch, the modes of what it creates, how often it tries
an object) are set here once, when the worker process starts, before it takes its first job.
"""

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pacs_ingest.shared.modes import Modes

DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class WorkerPolicy:
    allowed_directories: tuple[Path, ...]  # resolved: spools and archive roots must be below one
    modes: Modes
    max_attempts: int  # attempts to file one object before it goes to failed/

    @classmethod
    def of(cls, directories: tuple[str, ...], modes: Modes, max_attempts: int) -> "WorkerPolicy":
        return cls(tuple(Path(os.path.realpath(d)) for d in directories), modes, max_attempts)

    def allows(self, directory: str) -> bool:
        """True if `directory`, symbolic links resolved, is an allowed directory or below one."""
        resolved = _resolved(directory)
        return any(resolved.is_relative_to(root) for root in self.allowed_directories)


@lru_cache(maxsize=256)
def _resolved(directory: str) -> Path:
    """realpath(3) walks every component (an lstat each); jobs name the same few folders."""
    return Path(os.path.realpath(directory))


_installed: WorkerPolicy | None = None


def install(policy: WorkerPolicy) -> None:
    global _installed  # noqa: PLW0603 - one worker process, one policy, set once at start
    _installed = policy


def current() -> WorkerPolicy:
    """The policy of this worker process; RuntimeError if none was installed (not a worker)."""
    if _installed is None:
        raise RuntimeError("no worker policy installed in this process")
    return _installed
