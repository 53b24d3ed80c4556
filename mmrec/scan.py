"""Find media files under a directory: by suffix, sorted, following symlinks without looping."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from mmrec.media import MEDIA_SUFFIXES

log = logging.getLogger(__name__)


def iter_media_files(root: str | Path, recursive: bool = True) -> Iterator[Path]:
    """Yield media files (by suffix) under root in a stable order.

    Symlinked directories are followed once: a directory whose real path was already
    visited (a loop, or a second link to the same place) is skipped.
    A file path given as root is yielded as is.
    """
    root = Path(root)
    if root.is_file():
        yield root
        return
    seen: set[str] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen:
            log.info("skipping %s: already visited (symlink loop or duplicate link)", directory)
            continue
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            log.warning("cannot list %s: %s", directory, e)
            continue
        subdirs = []
        for entry in entries:
            path = Path(entry.path)
            try:
                if entry.is_dir(follow_symlinks=True):
                    if recursive and not entry.name.startswith("."):
                        subdirs.append(path)
                elif entry.is_file(follow_symlinks=True) and path.suffix.lower() in MEDIA_SUFFIXES:
                    yield path
            except OSError:  # broken symlink or permission problem
                log.warning("skipping unreadable entry %s", path)
        stack.extend(reversed(subdirs))
