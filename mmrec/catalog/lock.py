"""One writer per catalog: an advisory file lock that the OS drops when the process
dies (even by SIGKILL), so a crashed ingest never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
import time
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


def _take(fd: int, wait_s: float) -> bool:
    """Take the lock on fd, trying again for up to wait_s (polls from 0.5 ms to 10 ms apart:
    a sibling's event commit holds it for a few milliseconds)."""
    deadline, pause = time.monotonic() + wait_s, 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() + pause > deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.01)


@contextmanager
def write_lock(catalog: str | Path, what: str = "catalog", wait_s: float = 0.0) -> Iterator[None]:
    """Hold one of the catalog's write locks (LOCKS), or raise CatalogBusyError naming the
    holder. wait_s: how long to wait for another holder first (a service's writes wait for
    its sibling workers'; a command fails at once)."""
    path = Path(catalog)
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCKS[what], os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _take(fd, wait_s):
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
