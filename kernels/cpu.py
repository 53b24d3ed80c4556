"""Numba CPU top-k: BLAS scores one (user block × item tile) at a time, a fused Numba pass
masks exclusions and feeds a per-user k-heap; no U×N matrix exists.

Why the selection runs on the calling thread: the tile GEMM is ~90% of the work and
BLAS already spreads it over all cores; a second (Numba) thread pool taking turns with
BLAS's spinning workers measured 2-10x slower on 2 cores than this serial fused pass.
The final heap-sort runs once and is parallel over users.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .validate import EMPTY, check_finite, empty_result, non_finite, sort_rows

# Bytes of the per-tile score buffer (user block × item tile, float32).
TILE_BYTES = 4 << 20
MAX_USER_BLOCK = 512
# Scores checked at once against a user's k-th best before any per-item branch.
SCAN = 32


@njit(inline="always")
def _worse(s1: float, i1: int, s2: float, i2: int) -> bool:
    return s1 < s2 or (s1 == s2 and i1 > i2)


@njit(inline="always")
def _sift_down(hs, hi, pos, size):  # noqa: ANN001 - numba kernel
    s = hs[pos]
    i = hi[pos]
    while True:
        c = 2 * pos + 1
        if c >= size:
            break
        r = c + 1
        if r < size and _worse(hs[r], hi[r], hs[c], hi[c]):
            c = r
        if _worse(hs[c], hi[c], s, i):
            hs[pos] = hs[c]
            hi[pos] = hi[c]
            pos = c
        else:
            break
    hs[pos] = s
    hi[pos] = i


@njit(cache=True, nogil=True)
def _select_tile(scores, n, col0, u0, indptr, excl, ptr, heap_s, heap_i):  # noqa: ANN001
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
                    _sift_down(hs, hi, 0, k)
                    rs = hs[0]
                    ri = hi[0]


@njit(cache=True, nogil=True)
def _first_non_finite(tile, mask):  # noqa: ANN001
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


_EXPONENT = {np.dtype(np.float32): (np.uint32, 0x7F800000), np.dtype(np.float16): (np.uint16, 0x7C00)}


def _check_tile(part: np.ndarray, row0: int) -> None:
    bits, mask = _EXPONENT[part.dtype]
    bad = _first_non_finite(part.view(bits), bits(mask))
    if bad >= 0:
        raise non_finite("items", row0 + bad)


@njit(cache=True, parallel=True)
def _finalize(heap_s, heap_i, out_i, out_s):  # noqa: ANN001
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
            _sift_down(hs, hi, 0, t)


def topk_cpu(
    users: np.ndarray, items: np.ndarray, k: int, indptr: np.ndarray, ids: np.ndarray,
    scan_items: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Numba CPU top-k over validated inputs (see `mmrec.kernels.topk`); scan_items checks
    the items for NaN/inf tile by tile, right after each tile's GEMM has read it."""
    n_users, n_items = users.shape[0], items.shape[0]
    out_i, out_s = empty_result(n_users, k)
    if n_users == 0 or n_items == 0:
        if scan_items:
            check_finite("items", items)
        return out_i, out_s
    ub = min(n_users, MAX_USER_BLOCK)
    tile = max(256, min(n_items, TILE_BYTES // (4 * ub)))
    buf = np.empty((ub, tile), np.float32)
    up = np.empty((tile, items.shape[1]), np.float32) if items.dtype == np.float16 else None
    excl = sort_rows(indptr, ids)
    ptr = indptr[:-1].copy()
    heap_s = np.full((n_users, k), -np.inf, np.float32)
    heap_i = np.full((n_users, k), EMPTY, np.int64)
    for u0 in range(0, n_users, ub):
        u1 = min(n_users, u0 + ub)
        for s in range(0, n_items, tile):
            e = min(n_items, s + tile)
            part = items[s:e]
            if up is not None:
                np.copyto(up[: e - s], part)
                part = up[: e - s]
            sc = buf[: u1 - u0, : e - s]
            np.matmul(users[u0:u1], part.T, out=sc)
            if scan_items and u0 == 0:  # NaN/inf scan, once, while the tile is in cache
                _check_tile(items[s:e], s)
            _select_tile(sc, e - s, s, u0, indptr, excl, ptr, heap_s, heap_i)
    _finalize(heap_s, heap_i, out_i, out_s)
    return out_i, out_s
