"""The service's compute gate: at most `slots` requests inside, served in arrival order, and
a request waiting for a batch inside it gives its slot back meanwhile."""

from __future__ import annotations

import threading
import time

import pytest

from mmrec.serve.gate import Gate


def _wait_for(cond, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_no_more_than_slots_inside_at_once():
    gate, inside, peak, lock = Gate(2), [0], [0], threading.Lock()

    def work() -> None:
        with gate.held():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.01)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert peak[0] == 2 and inside[0] == 0


def test_waiters_enter_in_arrival_order_and_a_returning_one_first():
    gate, order = Gate(1), []
    release_first, back = threading.Event(), threading.Event()

    def first() -> None:
        with gate.held():
            release_first.wait(5)
            with gate.released():  # waiting on a batch: the slot goes to the next in line
                back.wait(5)
            order.append("first, back")

    def waiter(name: str) -> None:
        with gate.held():
            order.append(name)
            if name == "a":
                back.set()  # first comes back while b still waits: first goes before b
                time.sleep(0.05)

    t0 = threading.Thread(target=first)
    t0.start()
    _wait_for(lambda: gate._free == 0)
    waiters = []
    for name in ("a", "b"):
        waiters.append(threading.Thread(target=waiter, args=(name,)))
        waiters[-1].start()
        queued = len(waiters)
        _wait_for(lambda: len(gate._waiting) == queued)  # noqa: B023 - read before the next turn
    release_first.set()
    for t in (t0, *waiters):
        t.join(5)
    assert order == ["a", "first, back", "b"]


def test_held_is_reentrant_and_released_outside_is_a_no_op():
    gate = Gate(1)
    with gate.released():  # holding nothing: nothing to give back
        pass
    with gate.held(), gate.held():  # a route calling another in the same thread
        assert gate._free == 0
    assert gate._free == 1


def test_a_gate_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        Gate(0)
