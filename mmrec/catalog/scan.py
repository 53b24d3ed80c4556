"""Find media files under a directory: by suffix, sorted, following symlinks without looping."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

from mmrec.errors import printable
from mmrec.media import MEDIA_SUFFIXES

log = logging.getLogger(__name__)


def iter_media_files(root: str | Path, recursive: bool = True) -> Iterator[Path]:
    """Yield media files (by suffix) under root in a stable order.

    Symlinked directories are followed once: a directory whose real path was already
    visited (a loop, or a second link to the same place) is skipped.
    A file path given as root is yielded as is.

    Never raises for what it finds: an entry it cannot stat (a broken symlink, a
    symlink loop, a name too long) or a directory it cannot list is logged as one
    printable warning line and skipped; FIFOs, sockets and devices are never yielded,
    so nothing downstream can block opening them. Names that are not valid UTF-8 are
    yielded as surrogate-escaped str paths, which open fine (os.fsencode gives back
    the bytes).
    """
    root = Path(os.fsdecode(root)) if isinstance(root, bytes) else Path(root)
    try:
        if root.is_file():
            yield root
            return
    except (OSError, ValueError) as e:
        log.warning("cannot scan %s: %s", printable(str(root)), _reason(e))
        return
    seen: set[str] = set()
    stack = [root]
    while stack:
        directory = stack.pop()
        real = os.path.realpath(directory)
        if real in seen:
            log.info("skipping %s: already visited (symlink loop or duplicate link)",
                     printable(str(directory)))
            continue
        seen.add(real)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            log.warning("cannot list %s: %s", printable(str(directory)), _reason(e))
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
            except OSError as e:  # symlink loop, name too long, permission problem
                log.warning("skipping %s: %s", printable(str(path)), _reason(e))
        stack.extend(reversed(subdirs))


def _reason(e: BaseException) -> str:
    return printable(getattr(e, "strerror", None) or str(e))
