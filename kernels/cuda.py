"""Numba CUDA top-k in two passes, so the full U×N score matrix never exists.

Pass 1: a block takes UB users × one tile of TILE items, stages the user vectors and the
item tile in shared memory DC dimensions at a time, accumulates float32 dot products in
registers, then per user marks exclusions and bitonic-sorts the tile in shared memory,
keeping the best min(k, TILE). Pass 2 repeatedly merges groups of those sorted lists
(bitonic sort of up to SORT_CAP entries) until one list of k remains per user.
Users are processed in batches so the partial lists stay under PARTIAL_BYTES.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda, float32, int32

from .validate import sort_rows

# The simulator runs every CUDA thread as a Python thread, so it gets the same kernels
# with smaller blocks; k > TILE and multi-round merges are still exercised there.
_SIM = bool(config.ENABLE_CUDASIM)
THREADS = 32 if _SIM else 256
TILE = 128 if _SIM else 1024  # items per pass-1 block
IPT = TILE // THREADS  # items per thread
UB = 2 if _SIM else 4  # users per pass-1 block
DC = 4  # dimensions staged in shared memory per step
SORT_CAP = 512 if _SIM else 4096  # entries one block can sort in shared memory
MAX_K = SORT_CAP // 2
SENTINEL = np.iinfo(np.int32).max  # empty/excluded slot index; loses every tie
PARTIAL_BYTES = 256 << 20


@cuda.jit(device=True, inline=True)
def _before(s1, i1, s2, i2):  # noqa: ANN001, ANN202
    return s1 > s2 or (s1 == s2 and i1 < i2)


@cuda.jit(device=True)
def _bitonic(keys, idx, n):  # noqa: ANN001, ANN202
    """Sort keys/idx[:n] (n a power of two) best-first; all threads of the block call it."""
    tid = cuda.threadIdx.x
    size = 2
    while size <= n:
        stride = size // 2
        while stride > 0:
            for i in range(tid, n, THREADS):
                j = i ^ stride
                if j > i:
                    first = (i & size) == 0
                    ok = _before(keys[i], idx[i], keys[j], idx[j])
                    if ok != first:
                        ks = keys[i]
                        keys[i] = keys[j]
                        keys[j] = ks
                        ix = idx[i]
                        idx[i] = idx[j]
                        idx[j] = ix
            cuda.syncthreads()
            stride //= 2
        size *= 2


@cuda.jit(device=True, inline=True)
def _lower_bound(a, lo, hi, x):  # noqa: ANN001, ANN202
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@cuda.jit
def _pass1(users, items, indptr, excl, u_off, m, out_s, out_i):  # noqa: ANN001, ANN202
    """Best m of each (user, item tile); out_[s|i] are (Ub, n_tiles, m) for this user batch."""
    tid = cuda.threadIdx.x
    ub0 = cuda.blockIdx.y * UB  # user row within this batch
    t0 = cuda.blockIdx.x * TILE
    n_users_b = out_s.shape[0]
    n_items = items.shape[0]
    dim = items.shape[1]
    sh_u = cuda.shared.array((UB, DC), float32)
    sh_it = cuda.shared.array((TILE, DC), float32)
    keys = cuda.shared.array(TILE, float32)
    idx = cuda.shared.array(TILE, int32)
    acc = cuda.local.array(UB * IPT, float32)
    for a in range(UB * IPT):
        acc[a] = 0.0
    for d0 in range(0, dim, DC):
        for e in range(tid, UB * DC, THREADS):
            r = e // DC
            d = d0 + e % DC
            uu = ub0 + r
            sh_u[r, d % DC] = users[u_off + uu, d] if (uu < n_users_b and d < dim) else 0.0
        for e in range(tid, TILE * DC, THREADS):
            r = e // DC
            d = d0 + e % DC
            it = t0 + r
            sh_it[r, d % DC] = float32(items[it, d]) if (it < n_items and d < dim) else 0.0
        cuda.syncthreads()
        for q in range(IPT):
            r = tid + q * THREADS
            for uu in range(UB):
                s = acc[uu * IPT + q]
                for d in range(DC):
                    s += sh_u[uu, d] * sh_it[r, d]
                acc[uu * IPT + q] = s
        cuda.syncthreads()
    for uu in range(UB):
        row = ub0 + uu
        if row >= n_users_b:  # uniform across the block
            break
        for q in range(IPT):
            r = tid + q * THREADS
            if t0 + r < n_items:
                keys[r] = acc[uu * IPT + q]
                idx[r] = t0 + r
            else:
                keys[r] = -math.inf
                idx[r] = SENTINEL
        cuda.syncthreads()
        g = u_off + row
        lo = _lower_bound(excl, indptr[g], indptr[g + 1], t0)
        hi = _lower_bound(excl, lo, indptr[g + 1], t0 + TILE)
        for p in range(lo + tid, hi, THREADS):
            r = excl[p] - t0
            keys[r] = -math.inf
            idx[r] = SENTINEL
        cuda.syncthreads()
        _bitonic(keys, idx, TILE)
        for p in range(tid, m, THREADS):
            out_s[row, cuda.blockIdx.x, p] = keys[p]
            out_i[row, cuda.blockIdx.x, p] = idx[p]
        cuda.syncthreads()


@cuda.jit
def _merge(in_s, in_i, group, n_sort, out_s, out_i):  # noqa: ANN001, ANN202
    """Merge `group` sorted lists per user into the best out_s.shape[2] entries."""
    tid = cuda.threadIdx.x
    row = cuda.blockIdx.y
    g0 = cuda.blockIdx.x * group
    n_lists = in_s.shape[1]
    m_in = in_s.shape[2]
    m_out = out_s.shape[2]
    keys = cuda.shared.array(SORT_CAP, float32)
    idx = cuda.shared.array(SORT_CAP, int32)
    for e in range(tid, n_sort, THREADS):
        lst = g0 + e // m_in
        if e < group * m_in and lst < n_lists:
            keys[e] = in_s[row, lst, e % m_in]
            idx[e] = in_i[row, lst, e % m_in]
        else:
            keys[e] = -math.inf
            idx[e] = SENTINEL
    cuda.syncthreads()
    _bitonic(keys, idx, n_sort)
    for p in range(tid, m_out, THREADS):
        out_s[row, cuda.blockIdx.x, p] = keys[p]
        out_i[row, cuda.blockIdx.x, p] = idx[p]


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def topk_cuda(
    users: np.ndarray, items: np.ndarray, k: int, indptr: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Numba CUDA top-k over validated inputs (see `mmrec.kernels.topk`); k <= MAX_K."""
    from .validate import KernelInputError, empty_result

    n_users, n_items = users.shape[0], items.shape[0]
    if k > MAX_K:
        raise KernelInputError(f"backend='cuda' supports k <= {MAX_K}; got k={k}")
    if n_items >= SENTINEL:
        raise KernelInputError(f"backend='cuda' supports fewer than {SENTINEL} items")
    out_i, out_s = empty_result(n_users, k)
    if n_users == 0 or n_items == 0:
        return out_i, out_s
    m = min(k, TILE)
    n_tiles = -(-n_items // TILE)
    d_users = cuda.to_device(users)
    d_items = cuda.to_device(items)
    d_indptr = cuda.to_device(indptr)
    d_excl = cuda.to_device(sort_rows(indptr, ids) if ids.size else np.zeros(1, np.int64))
    batch = max(UB, min(n_users, PARTIAL_BYTES // (8 * n_tiles * m)) // UB * UB)
    for u0 in range(0, n_users, batch):
        nb = min(batch, n_users - u0)
        ps = cuda.device_array((nb, n_tiles, m), np.float32)
        pi = cuda.device_array((nb, n_tiles, m), np.int32)
        _pass1[(n_tiles, -(-nb // UB)), THREADS](d_users, d_items, d_indptr, d_excl, u0, m, ps, pi)
        while ps.shape[1] > 1 or ps.shape[2] != min(k, n_tiles * TILE):
            m_in = ps.shape[2]
            group = max(2, SORT_CAP // m_in) if ps.shape[1] > 1 else 1
            n_out = -(-ps.shape[1] // group)
            m_out = min(k, group * m_in)
            qs = cuda.device_array((nb, n_out, m_out), np.float32)
            qi = cuda.device_array((nb, n_out, m_out), np.int32)
            _merge[(n_out, nb), THREADS](ps, pi, group, _pow2(group * m_in), qs, qi)
            ps, pi = qs, qi
        s = ps.copy_to_host()[:, 0, :]
        i = pi.copy_to_host()[:, 0, :].astype(np.int64)
        pad = i == SENTINEL
        w = s.shape[1]
        out_s[u0 : u0 + nb, :w] = np.where(pad, -np.inf, s)
        out_i[u0 : u0 + nb, :w] = np.where(pad, -1, i)
    return out_i, out_s
