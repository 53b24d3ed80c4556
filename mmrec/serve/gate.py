"""At most `slots` requests computing at once; the others wait their turn.

Python runs one thread at a time (the GIL), so eight requests scoring at once on two cores
take as long in all as eight in a row, plus the switching between them: measured at
100k items, a recommendation cost 3.9 ms of CPU alone and 7 ms among eight. A request
that waits for work done for it elsewhere (a batched text embedding, a group commit)
gives its slot back meanwhile, so that work still gathers every request that wants it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager


class Gate:
    """`with gate.held():` around a request's computing; `with gate.released():` around a
    wait inside it (a no-op in a thread that holds no slot). First come, first served: a
    freed slot goes straight to the longest waiter (a request back from a wait first), so
    no request is overtaken again and again while the gate is busy."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a gate needs at least one slot, not {slots}")
        self.slots = slots
        self._free = slots
        self._waiting: deque[threading.Lock] = deque()  # one locked lock per waiter
        self._lock = threading.Lock()
        self._mine = threading.local()

    def _acquire(self, first: bool = False) -> None:
        with self._lock:
            if self._free and not self._waiting:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            (self._waiting.appendleft if first else self._waiting.append)(turn)
        turn.acquire()  # released by the request that hands its slot over

    def _release(self) -> None:
        with self._lock:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._free += 1

    def _holding(self) -> bool:
        return getattr(self._mine, "held", False)

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._holding():  # re-entered (a route calling another): one slot is enough
            yield
            return
        self._acquire()
        self._mine.held = True
        try:
            yield
        finally:
            self._mine.held = False
            self._release()

    @contextmanager
    def released(self) -> Iterator[None]:
        if not self._holding():
            yield
            return
        self._mine.held = False
        self._release()
        try:
            yield
        finally:
            self._acquire(first=True)
            self._mine.held = True
