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
from mmrec import scoring

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


def _int_case(rng, n_users, n_items, dim, dtype, per_user):
    users = rng.integers(-3, 4, (n_users, dim)).astype(np.float32)
    items = rng.integers(-3, 4, (n_items, dim)).astype(dtype)
    indptr = np.r_[0, np.full(n_users, per_user).cumsum()]
    return users, items, (indptr, rng.integers(0, n_items, indptr[-1]))


@pytest.mark.gpu
@pytest.mark.parametrize("n_users", [1, 2, 3, 8, 16, 40, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_cuda_kernel_on_gpu(n_users, dtype):
    """Every pass-1 tiling, exact against the reference on integer data (ties included)."""
    if not K.cuda_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(n_users)
    users, items, excl = _int_case(rng, n_users, 50_003, 67, dtype, 40)
    for k in (1, 20, 1000, 2048):
        a = K.topk(users, items, k, excl, backend="numpy")
        b = K.topk(users, items, k, excl, backend="cuda")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.gpu
def test_cuda_device_items_and_random_floats():
    """Items kept on the GPU give the same answer as host items; float scores match float64."""
    if not K.cuda_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(5)
    users = rng.standard_normal((24, 512)).astype(np.float32)
    items = rng.standard_normal((300_000, 512)).astype(np.float32)
    d_items = K.to_device(items)
    idx, sc = K.topk(users, d_items, 100, backend="auto")
    idx2, sc2 = K.topk(users, items, 100, backend="cuda")
    np.testing.assert_array_equal(idx, idx2)
    exact = users.astype(np.float64) @ items.astype(np.float64).T
    np.testing.assert_allclose(sc, np.take_along_axis(exact, idx, 1), rtol=1e-4, atol=1e-3)
    kth = -np.sort(-exact, axis=1)[:, 99]
    assert np.all(sc[:, -1] >= kth - 1e-3)
    with pytest.raises(K.KernelInputError, match="backend"):
        K.topk(users, d_items, 5, backend="cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_torch_gemm_route_on_gpu(dtype):
    """mmrec.scoring's backend="torch" on the GPU (cuBLAS; float16 tensor cores with the hi/lo user split):
    exact against the reference on integer data with ties and exclusions, items on the
    host or already on the GPU as a torch tensor."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(17)
    for n_users in (1, 16, 300):
        users, items, excl = _int_case(rng, n_users, 50_003, 67, dtype, 40)
        on_gpu = torch.from_numpy(items).cuda()
        for k in (1, 20, 1000):
            a = K.topk(users, items, k, excl, backend="numpy")
            for it in (items, on_gpu):
                b = scoring.topk(users, it, k, excl, backend="torch")
                np.testing.assert_array_equal(a[0], b[0])
                np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["auto", "cuda", "torch"])
def test_prepared_items_stay_on_the_gpu_and_give_the_same_answer(backend):
    if not K.cuda_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(23)
    users, items, excl = _int_case(rng, 40, 20_011, 33, np.float32, 10)
    prepared = scoring.prepare(items, backend)
    assert hasattr(prepared, "__cuda_array_interface__")  # a device copy, made once
    a = K.topk(users, items, 50, excl, backend="numpy")
    b = scoring.topk(users, prepared, 50, excl, backend=backend, trusted_items=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
