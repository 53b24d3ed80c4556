"""Per-user k-heaps shared by the Numba CPU top-k kernels: the contract's order (higher
score first, equal scores to the smaller index), a fused mask-and-push pass over a block
of scores, an in-cache NaN/inf row finder, and the final best-first heap-sort."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .twin import parallel_kernel
from .validate import EMPTY

# Scores checked at once against a user's k-th best before any per-item branch.
SCAN = 32
# Per item dtype: (unsigned int of its width, its exponent bits), for first_non_finite.
EXPONENT = {np.dtype(np.float32): (np.uint32, 0x7F800000), np.dtype(np.float16): (np.uint16, 0x7C00)}


@njit(inline="always")
def worse(s1: float, i1: int, s2: float, i2: int) -> bool:
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(inline="always")
def sift_down(hs, hi, pos, size):  # noqa: ANN001 - numba kernel
    s = hs[pos]
    i = hi[pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        r = c + 1
        if r < size and worse(hs[r], hi[r], hs[c], hi[c]):
            c = r
        if worse(hs[c], hi[c], s, i):
            hs[pos] = hs[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    hs[pos] = s
    hi[pos] = i


@njit(cache=True, nogil=True)
def select_tile(scores, n, col0, u0, indptr, excl, ptr, heap_s, heap_i):  # noqa: ANN001
    """Mask this tile's excluded items (NaN) and push the rest through each user's heap."""
    k = heap_s.shape[1]
    stop = col0 + n
    for r in range(scores.shape[0]):
        u = u0 + r
        row = scores[r]
        p = ptr[u]
        end = indptr[u + 1]
        while p < end and excl[p] < stop:
            row[excl[p] - col0] = np.nan
            p += 1
        ptr[u] = p
        hs = heap_s[u]
        hi = heap_i[u]
        rs = hs[0]
        ri = hi[0]
        for j0 in range(0, n, SCAN):
            j1 = min(n, j0 + SCAN)
            hit = False
            for j in range(j0, j1):  # branch-free, vectorised: does any score reach the heap?
                hit |= row[j] >= rs
            if not hit:
                continue
            for j in range(j0, j1):
                v = row[j]
                if v > rs or (v == rs and col0 + j < ri):  # NaN fails both
                    hs[0] = v
                    hi[0] = col0 + j
                    sift_down(hs, hi, 0, k)
                    rs = hs[0]
                    ri = hi[0]


@njit(cache=True, nogil=True)
def first_non_finite(tile, mask):  # noqa: ANN001
    """Index of the first row of `tile` (float bits as unsigned ints) holding NaN or inf, else -1.

    A float is NaN/inf exactly when all its exponent bits (`mask`) are set; the integer
    max-reduction vectorises, so this costs little while the tile is still in cache.
    """
    for r in range(tile.shape[0]):
        row = tile[r]
        worst = row[0] & mask
        for j in range(1, row.shape[0]):
            worst = max(worst, row[j] & mask)
        if worst == mask:
            return r
    return -1


@parallel_kernel(cache=True)
def finalize(heap_s, heap_i, out_i, out_s):  # noqa: ANN001
    """Heap-sort each user's heap into best-first order; empty slots become -1 / -inf."""
    n_users, k = heap_s.shape
    for u in prange(n_users):
        hs = heap_s[u]
        hi = heap_i[u]
        for size in range(k, 0, -1):
            t = size - 1
            if hi[0] == EMPTY:
                out_i[u, t] = -1
                out_s[u, t] = -np.inf
            else:
                out_i[u, t] = hi[0]
                out_s[u, t] = hs[0]
            hs[0] = hs[t]
            hi[0] = hi[t]
            sift_down(hs, hi, 0, t)
