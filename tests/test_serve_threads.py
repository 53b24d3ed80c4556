"""`mmrec serve` gives each request's math one thread: the limit must leave Numba able to
compile kernels afterwards, whether Numba was imported, or even started its threads, first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import numba, numpy as np
default = numba.config.NUMBA_NUM_THREADS
{before}
from mmrec.serve.runner import limit_threads
limit_threads(1)
f = numba.njit(parallel=True)(lambda x: x + 1)  # a compile re-reads Numba's config
import torch
print(int(f(np.arange(4)).sum()), default, numba.config.NUMBA_NUM_THREADS, numba.get_num_threads(),
      torch.get_num_threads())
"""


@pytest.mark.parametrize("before", [
    "",  # imported only: its pool (and OpenMP's) starts with the limit
    "numba.njit(parallel=True)(lambda x: x * 2)(np.arange(4))",  # its pool is running: it keeps its size
])
def test_the_thread_limit_leaves_numba_compiling(before):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(before=before)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    total, default, threads, pool, torch_threads = out.stdout.split()
    assert total == "10" and threads == pool == (default if before else "1")
    if not before:  # OpenMP's pool, which torch shares with Numba's OpenMP layer, too
        assert torch_threads == "1"
