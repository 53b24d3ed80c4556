"""Group commit of event batches: the batches that arrive while one commit runs are stored
together by the next, so concurrent clients wait for one commit instead of queueing
for one each. Every caller returns only once its own batch is stored (or refused)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Batch = tuple[Sequence[dict[str, Any]], bool]  # (events, partial)


@dataclass
class _Ticket:
    batch: Batch
    done: threading.Event = field(default_factory=threading.Event)
    report: Any = None
    error: BaseException | None = None


class GroupCommit:
    """write(batch) -> its report; `commit` stores a list of batches in one commit and
    returns one report per batch (mmrec.Catalog.record_event_batches)."""

    def __init__(self, commit: Callable[[list[Batch]], list[Any]], max_batches: int = 256) -> None:
        self._commit = commit
        self.max_batches = max_batches
        self._queue: list[_Ticket] = []
        self._queued = threading.Lock()  # guards the queue
        self._writing = threading.Lock()  # held by the thread that commits for everyone queued
        self.commits = 0  # commits made, and the batches they held (for /api/stats)
        self.batches = 0

    @property
    def lock(self) -> threading.Lock:
        """Held while a commit runs: hold it to keep commits out (a compaction)."""
        return self._writing

    def write(self, batch: Batch) -> Any:
        ticket = _Ticket(batch)
        with self._queued:
            self._queue.append(ticket)
        while not ticket.done.is_set():
            with self._writing:  # the first here commits every batch queued so far
                if ticket.done.is_set():
                    break
                with self._queued:
                    group, self._queue = self._queue[:self.max_batches], self._queue[self.max_batches:]
                self._run(group)
        if ticket.error is not None:
            raise ticket.error
        return ticket.report

    def _run(self, group: list[_Ticket]) -> None:
        try:
            reports = self._commit([t.batch for t in group])
        except BaseException as e:  # every caller of this group sees the failure
            for t in group:
                t.error = e
                t.done.set()
            return
        self.commits += 1
        self.batches += len(group)
        for t, r in zip(group, reports, strict=True):
            t.report = r
            t.done.set()
