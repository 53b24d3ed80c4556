"""Numba CPU top-k: BLAS scores one (user block × item tile) at a time, a fused Numba pass
masks exclusions and feeds a per-user k-heap; no U×N matrix exists. Batches of at most
cpu_few.FEW_USERS users over float32 items go to `cpu_few` (one pass, no GEMM) instead.

Why the selection runs on the calling thread: the tile GEMM is ~90% of the work and
BLAS already spreads it over all cores; a second (Numba) thread pool taking turns with
BLAS's spinning workers measured 2-10x slower on 2 cores than this serial fused pass.
The final heap-sort runs once and is parallel over users.
"""

from __future__ import annotations

import numpy as np

from . import cpu_few
from .cpu_heap import EXPONENT, finalize, first_non_finite, select_tile
from .validate import EMPTY, check_finite, empty_result, non_finite, sort_rows

# Bytes of the per-tile score buffer (user block × item tile, float32).
TILE_BYTES = 4 << 20
MAX_USER_BLOCK = 512

def _check_tile(part: np.ndarray, row0: int) -> None:
    bits, mask = EXPONENT[part.dtype]
    bad = first_non_finite(part.view(bits), bits(mask))
    if bad >= 0:
        raise non_finite("items", row0 + bad)


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
    if items.dtype == np.float32 and cpu_few.fits(n_users, k):
        return cpu_few.topk_cpu_few(users, items, k, indptr, ids, scan_items)
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
            select_tile(sc, e - s, s, u0, indptr, excl, ptr, heap_s, heap_i)
    finalize(heap_s, heap_i, out_i, out_s)
    return out_i, out_s
