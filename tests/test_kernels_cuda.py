"""The CUDA top-k kernel: on the Numba simulator always, on a real GPU when present."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mmrec import kernels as K

# Run in a child: NUMBA_ENABLE_CUDASIM must be set before numba.cuda is first imported.
SIM_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    from mmrec import kernels as K
    from mmrec.kernels import cuda as C
    rng = np.random.default_rng(7)
    res = {"tile": C.TILE, "max_k": C.MAX_K, "cases": []}
    # (U, N, D, k): N not a tile multiple, k > TILE (multi-round merge), k > N, fp16
    for U, N, D, k, dt in [(3, 300, 5, 6, "f4"), (1, 300, 4, 200, "f2"), (2, 40, 3, 50, "f4")]:
        u = rng.integers(-2, 3, (U, D)).astype(np.float32)
        it = rng.integers(-2, 3, (N, D)).astype(dt)
        cnt = rng.integers(0, N // 3, U)
        cnt[0] = N + 5  # user 0: every item excluded, with duplicates
        indptr = np.r_[0, np.cumsum(cnt)]
        ids = rng.integers(0, N, indptr[-1])
        ids[:N] = np.arange(N)
        a = K.topk(u, it, k, (indptr, ids), backend="numpy")
        b = K.topk(u, it, k, (indptr, ids), backend="cuda")
        res["cases"].append({"shape": [U, N, D, k], "idx": (a[0] == b[0]).all().item(),
                             "scores": (a[1] == b[1]).all().item(),
                             "user0_empty": (b[0][0] == -1).all().item()})
    try:
        K.topk(u, it, C.MAX_K + 1, backend="cuda")
    except K.KernelInputError as e:
        res["big_k_error"] = str(e)
    res["auto_picks_cuda"] = K.cuda_available()
    print(json.dumps(res))
""")


def test_cuda_kernel_on_simulator():
    env = os.environ | {"NUMBA_ENABLE_CUDASIM": "1"}
    out = subprocess.run([sys.executable, "-c", SIM_SCRIPT], capture_output=True, text=True,
                         env=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["cases"][1]["shape"][3] > res["tile"]  # k larger than one block's share
    for case in res["cases"]:
        assert case["idx"] and case["scores"] and case["user0_empty"], case
    assert "k <=" in res["big_k_error"]
    assert res["auto_picks_cuda"]


@pytest.mark.gpu
def test_cuda_kernel_on_gpu():
    if not K.cuda_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(1)
    users = rng.integers(-3, 4, (300, 64)).astype(np.float32)
    items = rng.integers(-3, 4, (50_000, 64)).astype(np.float16)
    indptr = np.r_[0, np.full(300, 40).cumsum()]
    ids = rng.integers(0, 50_000, indptr[-1])
    for k in (1, 20, 1000):
        a = K.topk(users, items, k, (indptr, ids), backend="numpy")
        b = K.topk(users, items, k, (indptr, ids), backend="cuda")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
