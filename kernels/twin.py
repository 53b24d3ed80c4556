"""One CPU kernel, two builds: Numba's parallel one, and a serial one that releases the GIL.

A call takes the serial build when this thread's Numba thread count is 1 (the HTTP
service's request threads: mmrec.serve.runner.limit_threads). No thread pool is woken for
one thread's work, and other threads' Python runs while it computes. The parallel build
keeps the GIL: the workqueue threading layer (the one every Numba install has) must not
be entered from two threads at once.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable
from typing import Any

import numba
from numba import njit


def parallel_kernel(**options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: `njit(parallel=True, **options)` and its serial, nogil twin, picked per call."""

    def build(fn: Callable[..., Any]) -> Callable[..., Any]:
        parallel = njit(parallel=True, **options)(fn)
        twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
        twin.__qualname__ = f"{fn.__qualname__}_serial"  # its own cache files: Numba keys them by name
        twin.__module__ = fn.__module__
        serial = njit(nogil=True, **options)(twin)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            return (serial if numba.get_num_threads() == 1 else parallel)(*args)

        call.parallel, call.serial = parallel, serial  # type: ignore[attr-defined]
        return call

    return build
