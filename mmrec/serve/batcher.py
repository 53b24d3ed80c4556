"""Concurrent calls served together: the calls that arrive while one run is under way are
taken by the next run as one batch, so concurrent clients wait for one run instead of
queueing for one each, and a lone call waits for nothing. The service batches event
posts (a group commit: one commit for all of them) and text queries (one forward pass of
each text tower for all of them). Every caller gets its own result, or the failure."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Ticket:
    call: Any
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Batcher:
    """submit(call) -> its result; `run` takes a list of calls and returns one result per
    call, in order (e.g. mmrec.Catalog.record_event_batches)."""

    def __init__(self, run: Callable[[list[Any]], Sequence[Any]], max_batch: int = 256) -> None:
        self._run_all = run
        self.max_batch = max_batch
        self._queue: list[_Ticket] = []
        self._queued = threading.Lock()  # guards the queue
        self._running = threading.Lock()  # held by the thread that runs for everyone queued
        self.runs = 0  # runs made, and the calls they held (for /api/stats)
        self.calls = 0

    @property
    def lock(self) -> threading.Lock:
        """Held while a run is under way: hold it to keep runs out (a compaction)."""
        return self._running

    def submit(self, call: Any) -> Any:
        ticket = _Ticket(call)
        with self._queued:
            self._queue.append(ticket)
        while not ticket.done.is_set():
            with self._running:  # the first here runs every call queued so far
                if ticket.done.is_set():
                    break
                with self._queued:
                    group, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                self._run(group)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _run(self, group: list[_Ticket]) -> None:
        try:
            results = self._run_all([t.call for t in group])
        except BaseException as e:  # every caller of this group sees the failure
            for t in group:
                t.error = e
                t.done.set()
            return
        self.runs += 1
        self.calls += len(group)
        for t, r in zip(group, results, strict=True):
            t.result = r
            t.done.set()
