"""One writer per catalog: an advisory file lock that the OS drops when the process
dies (even by SIGKILL), so a crashed ingest never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmrec.errors import MmrecError

LOCK_NAME = ".mmrec-write.lock"
# What each lock guards: "catalog" every table but the interactions (ingest, index, meta);
# "interactions" the interactions table, so that live events keep flowing during an ingest.
LOCKS = {"catalog": LOCK_NAME, "interactions": ".mmrec-interactions.lock"}


class CatalogBusyError(MmrecError):
    """Another process is writing to the catalog."""


@contextmanager
def write_lock(catalog: str | Path, what: str = "catalog") -> Iterator[None]:
    """Hold one of the catalog's write locks (LOCKS), or raise CatalogBusyError naming the holder."""
    path = Path(catalog)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCKS[what], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise CatalogBusyError(
                f"{path}: another mmrec process (pid {holder}) is writing to this catalog"
                f"{'' if what == 'catalog' else ' (' + what + ')'}; wait for it to finish "
                "(queries work meanwhile) or use another --db") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
