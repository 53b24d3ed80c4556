"""Numba CPU top-k for a few users: one parallel pass over the items, each item row read
once for every user, scored while it is in L1; each item range keeps its own heaps, merged
at the end.

Why not BLAS here: a GEMM with 2-16 rows runs far below the memory bound (2 cores,
N=100k, D=512: OpenBLAS 20-30 ms for U=2-16 where one pass over the 200 MB of items
takes ~8 ms). Scoring 4 item rows against one user at a time keeps the loads per FMA low
enough that U <= 4 stays near the memory bound (1-1.2x one pass) and U=16 near the FMA rate.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .cpu_heap import EXPONENT, finalize, first_non_finite, select_tile, sift_down, worse
from .twin import parallel_kernel
from .validate import EMPTY, non_finite, sort_rows

# At most this many users take this kernel (float32 items). 2 cores, N=100k, D=512, k=20
# (ms, this kernel / BLAS tiles): U=1 7 / 25, U=2 8.5 / 47, U=16 21 / 48, U=32 40 / 55,
# U=48 58 / 60, U=64 68 / 66: past ~48 users the GEMM's compute rate wins.
FEW_USERS = 32
BLOCK = 64  # items scored per step of a range: the U×BLOCK scores stay in L1
MIN_RANGE = 1024  # items per parallel range, at least
RANGES_PER_THREAD = 4  # ranges per Numba thread, for load balance...
# ...below this k: every range fills its own k-heap, so a large k wants few ranges (2 cores,
# N=100k, D=512, U=16, ms at 4 / 1 ranges per thread: k=20 21.9 / 22.0, k=100 24.5 / 22.7,
# k=400 32.2 / 26.3, k=1000 45.2 / 31.7; U=1, k=20: 8.1 / 12.0)
LARGE_K = 100
HEAP_BUDGET = 64 << 20  # bytes of per-range heaps (R × U × k × 12); past it, BLAS tiles serve
# Reassociation lets LLVM vectorise the float32 dot products (the summation order differs
# from BLAS's as BLAS's differs from NumPy's); no nnan/ninf, so NaN and inf stay visible.
_MATH = {"reassoc", "contract"}


def fits(n_users: int, k: int) -> bool:
    """Whether this kernel takes the batch: few users, and per-range heaps within budget
    (a huge k on many cores would otherwise hold R × U × k entries)."""
    ranges = _ranges_per_thread(k) * numba.get_num_threads()
    return n_users <= FEW_USERS and ranges * n_users * k * 12 <= HEAP_BUDGET


def _ranges_per_thread(k: int) -> int:
    return RANGES_PER_THREAD if k < LARGE_K else 1


@njit(inline="always", fastmath=_MATH)
def _dot(a, b):  # noqa: ANN001 - numba kernel
    acc = np.float32(0)
    for d in range(a.shape[0]):
        acc += a[d] * b[d]
    return acc


@njit(inline="always", fastmath=_MATH)
def _score_block(users, items, b0, b1, sc):  # noqa: ANN001
    """sc[u, j] = users[u] · items[b0 + j], four item rows per pass over a user row."""
    i = b0
    while i + 4 <= b1:
        r0, r1, r2, r3 = items[i], items[i + 1], items[i + 2], items[i + 3]
        j = i - b0
        for u in range(users.shape[0]):
            usr = users[u]
            a0 = np.float32(0)
            a1 = np.float32(0)
            a2 = np.float32(0)
            a3 = np.float32(0)
            for d in range(usr.shape[0]):
                x = usr[d]
                a0 += x * r0[d]
                a1 += x * r1[d]
                a2 += x * r2[d]
                a3 += x * r3[d]
            sc[u, j] = a0
            sc[u, j + 1] = a1
            sc[u, j + 2] = a2
            sc[u, j + 3] = a3
        i += 4
    while i < b1:
        for u in range(users.shape[0]):
            sc[u, i - b0] = _dot(users[u], items[i])
        i += 1


@njit(inline="always")
def _all_finite(row, n):  # noqa: ANN001
    ok = True
    for j in range(n):  # branch-free, vectorised
        ok &= np.abs(row[j]) < np.inf
    return ok


@parallel_kernel(cache=True, fastmath=_MATH)
def _ranges(users, items, bits, mask, indptr, excl, scan, step, heap_s, heap_i, bad):  # noqa: ANN001
    """Score and select each item range [r*step, (r+1)*step) into heap_s/heap_i[r]; with
    scan, a range meeting a NaN/inf item row records it in bad[r] and stops (`bits` is
    `items` viewed as uint32 and `mask` float32's exponent bits, for that check).

    A non-finite item row gives a non-finite score for every finite user, so the scan
    looks at user 0's scores only and checks the rows of a block whose scores are not all
    finite (a finite row whose score overflowed is not an error)."""
    n_items = items.shape[0]
    n_users = users.shape[0]
    for r in prange(heap_s.shape[0]):
        i0 = r * step
        i1 = min(n_items, i0 + step)
        sc = np.empty((n_users, BLOCK), np.float32)
        ptr = np.empty(n_users, np.int64)
        for u in range(n_users):  # each user's first exclusion at or after i0
            ptr[u] = indptr[u] + np.searchsorted(excl[indptr[u] : indptr[u + 1]], i0)
        for b0 in range(i0, i1, BLOCK):
            b1 = min(i1, b0 + BLOCK)
            _score_block(users, items, b0, b1, sc)
            if scan and not _all_finite(sc[0], b1 - b0):
                row = first_non_finite(bits[b0:b1], mask)
                if row >= 0:
                    bad[r] = b0 + row
                    break
            select_tile(sc, b1 - b0, b0, 0, indptr, excl, ptr, heap_s[r], heap_i[r])


@njit(cache=True)
def _merge(heap_s, heap_i):  # noqa: ANN001
    """Fold the per-range heaps (R, U, k) into range 0's, keeping the contract's order."""
    n_ranges, n_users, k = heap_s.shape
    for u in range(n_users):
        hs = heap_s[0, u]
        hi = heap_i[0, u]
        for r in range(1, n_ranges):
            for t in range(k):
                v = heap_s[r, u, t]
                i = heap_i[r, u, t]
                if i != EMPTY and worse(hs[0], hi[0], v, i):
                    hs[0] = v
                    hi[0] = i
                    sift_down(hs, hi, 0, k)


def topk_cpu_few(
    users: np.ndarray, items: np.ndarray, k: int, indptr: np.ndarray, ids: np.ndarray,
    scan_items: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k for U <= FEW_USERS users over float32 items (validated, N >= 1), in one pass."""
    n_users, n_items = users.shape[0], items.shape[0]
    n_ranges = max(1, min(_ranges_per_thread(k) * numba.get_num_threads(), -(-n_items // MIN_RANGE)))
    step = -(-n_items // n_ranges)
    n_ranges = -(-n_items // step)  # no empty range
    heap_s = np.full((n_ranges, n_users, k), -np.inf, np.float32)
    heap_i = np.full((n_ranges, n_users, k), EMPTY, np.int64)
    bad = np.full(n_ranges, -1, np.int64)
    excl = sort_rows(indptr, ids)
    bits, mask = EXPONENT[items.dtype]
    _ranges(users, items, items.view(bits), bits(mask), indptr, excl, scan_items, step, heap_s, heap_i, bad)
    if (bad >= 0).any():
        raise non_finite("items", int(bad[bad >= 0].min()))
    _merge(heap_s, heap_i)
    out_i = np.empty((n_users, k), np.int64)
    out_s = np.empty((n_users, k), np.float32)
    finalize(heap_s[0], heap_i[0], out_i, out_s)
    return out_i, out_s
