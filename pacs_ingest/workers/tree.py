"""Walking a folder tree in bounded memory: files are yielded as each directory is read, never
listed whole, so a tree of ten million files costs what its deepest path of folders costs."""

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path


def walk_files(roots: Iterable[str], on_error: Callable[[str, OSError], None]) -> Iterator[Path]:
    """Every regular file under `roots` (a root may be a file), depth first, symlinks to folders
    not followed. A folder that cannot be read is reported to `on_error` and skipped."""
    for root in roots:
        if os.path.isfile(root):
            yield Path(root)
            continue
        pending = [root]
        while pending:
            folder = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            pending.append(entry.path)
                        elif entry.is_file():
                            yield Path(entry.path)
            except OSError as exc:
                on_error(folder, exc)
