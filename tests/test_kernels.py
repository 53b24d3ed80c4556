"""Top-k: every mmrec.kernels backend, and the torch GEMM route through mmrec.scoring.dispatch,
against a brute-force oracle and the reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

from mmrec import kernels as K
from mmrec import scoring

BACKENDS = ["numpy", "cpu", "torch"]


def brute(users, items, k, exclude=None):
    """Exact oracle: float64 scores, full sort by (-score, index); only for tiny inputs."""
    s = users.astype(np.float64) @ items.astype(np.float64).T
    out_i = np.full((len(users), k), -1, np.int64)
    out_s = np.full((len(users), k), -np.inf, np.float32)
    for u in range(len(users)):
        bad = set() if exclude is None else set(exclude[1][exclude[0][u] : exclude[0][u + 1]])
        cand = sorted((-s[u, j], j) for j in range(len(items)) if j not in bad)[:k]
        out_i[u, : len(cand)] = [j for _, j in cand]
        out_s[u, : len(cand)] = [-v for v, _ in cand]
    return out_i, out_s


def int_case(rng, n_users, n_items, dim, dtype=np.float32, excl_frac=0.3):
    """Small-integer vectors: float32 sums are exact in any order, and ties are common."""
    users = rng.integers(-2, 3, (n_users, dim)).astype(np.float32)
    items = rng.integers(-2, 3, (n_items, dim)).astype(dtype)
    counts = rng.integers(0, max(1, int(n_items * excl_frac)) + 1, n_users)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    ids = rng.integers(0, n_items, indptr[-1])  # duplicates on purpose
    return users, items, (indptr, ids)


CASES = [  # (U, N, D, k): N not a tile multiple, k > N, U=1, k large
    (7, 1037, 5, 10),
    (1, 300, 8, 17),
    (4, 9, 3, 20),
    (3, 5000, 4, 600),
    (600, 40, 2, 3),  # more users than one CPU user block
    (32, 4100, 6, 9),  # the most users the CPU's few-users pass takes
    (33, 4100, 6, 9),  # one more: BLAS tiles
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_matches_oracle_exactly(backend, case, dtype):
    rng = np.random.default_rng(hash(case) % 2**32)
    users, items, excl = int_case(rng, *case[:3], dtype=dtype)
    k = case[3]
    got_i, got_s = scoring.topk(users, items, k, excl, backend=backend)
    if case[0] * case[1] <= 20000:
        want_i, want_s = brute(users, items, k, excl)
    else:
        want_i, want_s = K.topk(users, items, k, excl, backend="numpy")
    assert got_i.dtype == np.int64 and got_s.dtype == np.float32
    assert got_i.shape == got_s.shape == (case[0], k)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_s, want_s)


def test_reference_matches_oracle_with_large_scale_case():
    rng = np.random.default_rng(3)
    users, items, excl = int_case(rng, 5, 3000, 6)
    np.testing.assert_array_equal(
        K.topk(users, items, 40, excl, backend="numpy")[0], brute(users, items, 40, excl)[0]
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_excluded_user_and_padding(backend):
    rng = np.random.default_rng(5)
    users = rng.standard_normal((3, 4)).astype(np.float32)
    items = rng.standard_normal((50, 4)).astype(np.float32)
    ids = np.r_[np.arange(50), np.arange(50), [7, 7, 8]]  # user 0 excludes all, twice
    indptr = np.array([0, 100, 100, 103])
    idx, sc = scoring.topk(users, items, 60, (indptr, ids), backend=backend)
    assert (idx[0] == -1).all() and np.isneginf(sc[0]).all()
    assert (idx[1, :50] >= 0).all() and (idx[1, 50:] == -1).all()
    assert set(idx[2, :48]) == set(range(50)) - {7, 8} and (idx[2, 48:] == -1).all()
    assert np.all(np.diff(sc[1, :50]) <= 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_smaller_index_first(backend):
    users = np.ones((2, 3), np.float32)
    items = np.zeros((3000, 3), np.float32)
    items[[2999, 5, 1500, 17]] = 1.0
    idx, sc = scoring.topk(users, items, 6, backend=backend)
    assert idx[0].tolist() == [5, 17, 1500, 2999, 0, 1]
    assert sc[0].tolist() == [3, 3, 3, 3, 0, 0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_floats_agree_with_float64_scores(backend):
    rng = np.random.default_rng(11)
    users = rng.standard_normal((9, 32)).astype(np.float32)
    items = rng.standard_normal((7001, 32)).astype(np.float32)
    idx, sc = scoring.topk(users, items, 25, backend=backend)
    exact = users.astype(np.float64) @ items.astype(np.float64).T
    np.testing.assert_allclose(sc, np.take_along_axis(exact, idx, 1), rtol=1e-4, atol=1e-4)
    kth = -np.sort(-exact, axis=1)[:, 24]
    assert np.all(sc[:, -1] >= kth - 1e-4)


def test_backends_agree_on_random_floats():
    rng = np.random.default_rng(12)
    users = rng.standard_normal((40, 16)).astype(np.float32)
    items = rng.standard_normal((20000, 16)).astype(np.float16)
    a = K.topk(users, items, 10, backend="numpy")
    b = K.topk(users, items, 10, backend="cpu")
    np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-5)
    assert (a[0] == b[0]).mean() > 0.99  # only float-rounding near-ties may swap


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"users": np.zeros((2, 3)), "items": np.zeros((5, 4))}, "dimension"),
        ({"users": np.zeros(3)}, "2-D"),
        ({"k": 0}, "positive"),
        ({"k": 2.0}, "positive"),
        ({"users": np.zeros((2, 3), np.int32)}, "float"),
        ({"items": np.full((5, 3), np.nan)}, "NaN"),
        ({"exclude": (np.array([0, 1]), np.array([0]))}, "U\\+1"),
        ({"exclude": (np.array([0, 1, 3]), np.array([0]))}, "end at"),
        ({"exclude": (np.array([0, 2, 1]), np.array([0]))}, "non-decreasing"),
        ({"exclude": (np.array([0, 1, 1]), np.array([5]))}, "\\[0, 5\\)"),
        ({"exclude": (np.array([0, 1, 1]), np.array([0.5]))}, "integer"),
        ({"backend": "gpu"}, "auto, numpy, cpu, cuda"),
    ],
)
def test_input_errors(kwargs, match):
    args = {"users": np.zeros((2, 3)), "items": np.zeros((5, 3)), "k": 2} | kwargs
    with pytest.raises(K.KernelInputError, match=match):
        K.topk(**args)
    if kwargs.get("backend") != "gpu":  # the dispatcher's torch route validates the same way
        with pytest.raises(K.KernelInputError, match=match):
            scoring.topk(**(args | {"backend": args.get("backend", "torch")}))
    else:
        with pytest.raises(K.KernelInputError, match="cuda, torch"):
            scoring.topk(**args)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("n_users", [3, 40])  # the CPU's few-users pass and its BLAS tiles
def test_non_finite_item_is_rejected_in_any_tile(backend, dtype, bad, n_users):
    # The Numba CPU kernel scans items tile by tile; a bad value deep in the array counts.
    items = np.random.default_rng(3).standard_normal((30_000, 8)).astype(dtype)
    items[27_777, 5] = bad
    items[29_000, 1] = bad
    with pytest.raises(K.KernelInputError, match="NaN or inf"):
        scoring.topk(np.ones((n_users, 8)), items, 5, backend=backend)
    if backend == "cpu":
        with pytest.raises(K.KernelInputError, match="row 27777"):
            scoring.topk(np.ones((n_users, 8)), items, 5, backend=backend)


@pytest.fixture
def many_ranges(monkeypatch):
    """The few-users pass split into ~16-item ranges, so small inputs cross many of them."""
    from kernels import cpu_few

    monkeypatch.setattr(cpu_few, "MIN_RANGE", 16)
    monkeypatch.setattr(cpu_few, "RANGES_PER_THREAD", 1000)


def test_few_users_pass_merges_ranges_exactly(many_ranges):
    from kernels import cpu_few

    rng = np.random.default_rng(31)
    users, items, excl = int_case(rng, 5, 1000, 3, excl_frac=0.5)  # D=3: ties everywhere
    # k beyond a range's 16 items leaves empty slots to merge; from LARGE_K on, one range per thread
    for k in (1, 7, 40, cpu_few.LARGE_K + 50):
        got = K.topk(users, items, k, excl, backend="cpu")
        want = brute(users, items, k, excl)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_huge_k_leaves_the_few_users_pass_for_the_blas_tiles(monkeypatch):
    from kernels import cpu_few

    rng = np.random.default_rng(32)
    users, items, excl = int_case(rng, 3, 3000, 4)
    want = K.topk(users, items, 2500, excl, backend="numpy")
    assert cpu_few.fits(3, 2500)
    monkeypatch.setattr(cpu_few, "HEAP_BUDGET", 3 * 2500 * 12)  # one range's worth: too little

    def no(*a, **kw):
        raise AssertionError("the few-users pass ran past its heap budget")

    monkeypatch.setattr(cpu_few, "topk_cpu_few", no)
    got = K.topk(users, items, 2500, excl, backend="cpu")
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_few_users_pass_reports_the_first_bad_row_of_all_ranges(many_ranges):
    items = np.random.default_rng(2).standard_normal((1000, 4)).astype(np.float32)
    items[[903, 411], [0, 2]] = [np.inf, np.nan]  # two ranges; the later row is seen first
    with pytest.raises(K.KernelInputError, match="row 411"):
        K.topk(np.ones((2, 4)), items, 3, backend="cpu")


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_overflowing_score_is_not_a_non_finite_item():
    # Finite vectors whose dot product overflows float32: a score of inf, not a bad input.
    items = np.ones((500, 2), np.float32)
    items[123] = 3e38
    for n_users in (1, 40):
        idx, sc = K.topk(np.full((n_users, 2), 10.0), items, 2, backend="cpu")
        assert idx[:, 0].tolist() == [123] * n_users and np.isposinf(sc[:, 0]).all()
        assert idx[:, 1].tolist() == [0] * n_users


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_torch_route_merges_many_score_blocks_exactly(monkeypatch, dtype):
    pytest.importorskip("torch")
    from mmrec.scoring import gemm as gemm_topk

    # 4 bytes x 150 scores: blocks of one user x 150 items, so both loops run many times
    monkeypatch.setitem(gemm_topk.SCORE_BYTES, "cpu", 4 * 150)
    rng = np.random.default_rng(33)
    users, items, excl = int_case(rng, 9, 1000, 3, dtype=dtype)  # D=3: ties across blocks
    for k in (1, 12, 200):  # 200 > one block's 150 items: padding merged across blocks
        got = scoring.topk(users, items, k, excl, backend="torch")
        want = brute(users, items, k, excl)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_cuda_without_gpu_is_a_clear_error():
    if K.cuda_available():
        pytest.skip("a CUDA device (or the simulator) is present")  # only the inverse case
    with pytest.raises(K.BackendUnavailableError, match="needs a CUDA GPU"):
        K.topk(np.zeros((1, 2)), np.zeros((3, 2)), 1, backend="cuda")


def test_import_is_lazy():
    code = (
        "import json, sys, mmrec.kernels;"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('numba'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout) == []


def test_reference_never_allocates_full_matrix():
    rng = np.random.default_rng(0)
    users = rng.standard_normal((64, 16)).astype(np.float32)
    items = rng.standard_normal((200_000, 16)).astype(np.float32)
    excl = (np.r_[0, np.full(64, 100).cumsum()], rng.integers(0, 200_000, 6400))
    tracemalloc.start()
    K.topk(users, items, 10, excl, backend="numpy")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 * 200_000 * 4 / 3, peak  # full matrix would be 51 MB


def test_cpu_kernel_never_allocates_full_matrix():
    # Numba's allocations bypass tracemalloc, so measure the process's peak RSS in a child.
    code = textwrap.dedent("""
        import resource, numpy as np
        from mmrec import kernels as K
        rng = np.random.default_rng(0)
        u = rng.standard_normal((512, 8)).astype(np.float32)
        it = rng.standard_normal((200_000, 8)).astype(np.float32)
        excl = (np.r_[0, np.full(512, 10).cumsum()], rng.integers(0, 200_000, 5120))
        K.topk(u[:8], it[:5000], 10, (excl[0][:9], excl[1][:80] % 5000), backend="cpu")  # JIT
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * resource.getpagesize() // 1024
        K.topk(u, it, 10, excl, backend="cpu")
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(max(before, rss), after)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=os.environ | {"NUMBA_ENABLE_CUDASIM": "0"})
    base_kb, after_kb = map(int, out.stdout.split())
    full_kb = 512 * 200_000 * 4 // 1024  # 400 MB
    assert after_kb - base_kb < full_kb // 8, (base_kb, after_kb)


def test_auto_backend_choice():
    assert K.choose_backend(has_cuda=True) == "cuda"
    assert K.choose_backend(has_cuda=False) == "cpu"


def test_gemm_float16_user_split_keeps_float32_precision():
    """The CUDA float16 route (users as hi + lo halves) checked on the CPU: float16 × float16
    products are exact in float32, so emulating the tensor-core GEMM in float32 is faithful."""
    torch = pytest.importorskip("torch")
    from mmrec.scoring.gemm import _scorer

    rng = np.random.default_rng(8)
    users = (rng.standard_normal((5, 64)) * [[1e-3], [1.0], [7.0], [3e4], [1e6]]).astype(np.float32)
    items = rng.standard_normal((300, 64)).astype(np.float16)
    emulate = lambda a, b: a.float() @ b.float().T  # noqa: E731
    score = _scorer(torch.from_numpy(users), torch.from_numpy(items), torch.device("cpu"), emulate)
    got = score(0, 5, 0, 300).numpy()
    exact = users.astype(np.float64) @ items.astype(np.float64).T
    scale = np.abs(users).sum(axis=1, keepdims=True) * np.abs(items.astype(np.float64)).max()
    assert np.max(np.abs(got - exact) / scale) < 2e-6  # float32-level, not float16's 1e-3
    ints = rng.integers(-3, 4, (4, 64)).astype(np.float32)  # integer users stay exact
    got = _scorer(torch.from_numpy(ints), torch.from_numpy(items), torch.device("cpu"), emulate)(0, 4, 0, 300)
    want = ints.astype(np.float64) @ items.astype(np.float64).T
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-3)


def test_kernels_and_cpu_dispatch_never_import_torch():
    code = (
        "import json, sys, numpy as np; from mmrec import kernels as K, scoring;"
        "K.topk(np.ones((40, 4)), np.ones((50, 4)), 3, backend='cpu');"
        "K.topk(np.ones((2, 4)), np.ones((50, 4)), 3, backend='numpy');"
        "scoring.topk(np.ones((2, 4)), np.ones((50, 4)), 3);"
        "print(json.dumps('torch' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) is False


@pytest.mark.parametrize("backend", BACKENDS)
def test_trusted_items_skip_the_scan_but_not_the_answer(backend):
    rng = np.random.default_rng(21)
    users = rng.standard_normal((40, 16)).astype(np.float32)
    items = rng.standard_normal((5000, 16)).astype(np.float32)
    a = scoring.topk(users, items, 7, backend=backend)
    b = scoring.topk(users, items, 7, backend=backend, trusted_items=True)
    np.testing.assert_array_equal(a[0], b[0])
    bad = items.copy()
    bad[4321, 0] = np.nan
    with pytest.raises(K.KernelInputError, match="NaN"):
        scoring.topk(users, bad, 7, backend=backend)
    scoring.topk(users, bad, 7, backend=backend, trusted_items=True)  # the caller vouched: no scan


def test_dispatcher_auto_on_a_cpu_machine_is_the_kernels_auto():
    if K.cuda_available():
        pytest.skip("a GPU (or the simulator) is present: auto may take the torch route")
    rng = np.random.default_rng(4)
    users, items, excl = int_case(rng, 40, 3000, 6)
    for n in (1, 40):  # the few-users pass and the BLAS tiles
        a = scoring.topk(users[:n], items, 9, (excl[0][: n + 1], excl[1][: excl[0][n]]))
        b = K.topk(users[:n], items, 9, (excl[0][: n + 1], excl[1][: excl[0][n]]))
        np.testing.assert_array_equal(a[0], b[0])


def test_prepare_leaves_items_alone_without_a_gpu():
    if K.cuda_available():
        pytest.skip("a GPU (or the simulator) is present: prepare copies to it")
    items = np.ones((10, 4), np.float32)
    for backend in ("auto", "numpy", "cpu", "torch"):
        assert scoring.prepare(items, backend) is items
