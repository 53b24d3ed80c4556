"""Numba CUDA device code shared by the pass-1 kernels: result ordering, the per-block
candidate buffers and sorted lists, and pass 2 (merging sorted lists).

Selection inside a pass-1 block (UB users × one chunk of items): a score is admitted only
if it beats the user's running threshold (the block's current m-th best) and is not
excluded (binary search in the user's sorted CSR row); admitted scores go to a small shared
buffer per user. A full buffer is bitonic-sorted and merged by rank into the block's
sorted list, kept in global memory (a ping-pong pair), which raises the threshold.
Pass 2 (`make_merge`): bitonic merges of groups of sorted lists until one list per user.

Pass-1 kernels are written as source templates (`HEAD`, `ADMIT`, `TAIL` here) expanded with
tile constants and compiled by `build`: Numba does not unroll loops, and straight-line code
keeps the accumulators in registers with constant shared-memory offsets.
"""

from __future__ import annotations

import math

import numpy as np
from numba import config, cuda, float32, int32, int64, uint64

SENTINEL = np.iinfo(np.int32).max  # empty slot index; loses every tie


@cuda.jit(device=True, inline=True)
def _before(s1, i1, s2, i2):  # noqa: ANN001, ANN202
    """Ordering of every result list: higher score first, then smaller index."""
    return s1 > s2 or (s1 == s2 and i1 < i2)


@cuda.jit(device=True, inline=True)
def _imin(a, b):  # noqa: ANN001, ANN202
    return a if a < b else b  # the builtin min() fails to type in some numba.cuda versions


@cuda.jit(device=True, inline=True)
def _excluded(excl, lo, hi, x):  # noqa: ANN001, ANN202
    """Whether x is in the sorted slice excl[lo:hi]."""
    h = hi
    while lo < h:
        mid = (lo + h) // 2
        if excl[mid] < x:
            lo = mid + 1
        else:
            h = mid
    return lo < hi and excl[lo] == x


def make_bitonic(threads: int):  # noqa: ANN201
    """Bitonic network over keys/idx[:n] from stage `size0` on; runs of length size0/2 must
    already be sorted, alternately best-first and worst-first. Segments of `seg` (a power of
    two dividing n) end sorted best-first each; seg == n sorts the whole array."""

    @cuda.jit(device=True)
    def bitonic(keys, idx, n, size0, seg):  # noqa: ANN001, ANN202
        tid = cuda.threadIdx.x
        size = size0
        while size <= seg:
            stride = size // 2
            while stride > 0:
                for i in range(tid, n, threads):
                    j = i ^ stride
                    if j > i:
                        first = (i & size) == 0 or size == seg
                        if _before(keys[i], idx[i], keys[j], idx[j]) != first:
                            ks = keys[i]
                            keys[i] = keys[j]
                            keys[j] = ks
                            ix = idx[i]
                            idx[i] = idx[j]
                            idx[j] = ix
                cuda.syncthreads()
                stride //= 2
            size *= 2

    return bitonic


def make_flush(UB: int, B: int, T: int):  # noqa: ANN201, N803
    """Device function merging every non-empty user buffer into the block's lists."""
    NB = UB * B
    bitonic = make_bitonic(T)

    @cuda.jit(device=True)
    def flush(g0, cb, m, la_s, la_i, lb_s, lb_i, buf_s, buf_i, cnt, lc, par, thr_s, thr_i):  # noqa: ANN001, ANN202
        """Merge every non-empty user buffer into that user's list; raise thresholds."""
        tid = cuda.threadIdx.x
        for e in range(tid, NB, T):
            if e % B >= cnt[e // B]:
                buf_s[e] = -math.inf
                buf_i[e] = SENTINEL
        cuda.syncthreads()
        bitonic(buf_s, buf_i, NB, 2, B)
        w = m + B
        for e in range(tid, UB * w, T):
            u = e // w
            p = e - u * w
            nb = _imin(cnt[u], B)
            n_list = lc[u]
            if nb == 0 or p >= n_list + nb:
                continue
            row = g0 + u
            src_s, src_i = (la_s, la_i) if par[u] == 0 else (lb_s, lb_i)
            dst_s, dst_i = (lb_s, lb_i) if par[u] == 0 else (la_s, la_i)
            if p < n_list:  # a list entry moves down by the buffer entries before it
                s = src_s[row, cb, p]
                i = src_i[row, cb, p]
                lo, hi = u * B, u * B + nb
                while lo < hi:
                    mid = (lo + hi) // 2
                    if _before(buf_s[mid], buf_i[mid], s, i):
                        lo = mid + 1
                    else:
                        hi = mid
                r = p + lo - u * B
            else:  # a buffer entry moves down by the list entries before it
                q = p - n_list
                s = buf_s[u * B + q]
                i = buf_i[u * B + q]
                lo, hi = 0, n_list
                while lo < hi:
                    mid = (lo + hi) // 2
                    if _before(src_s[row, cb, mid], src_i[row, cb, mid], s, i):
                        lo = mid + 1
                    else:
                        hi = mid
                r = q + lo
            if r < m:
                dst_s[row, cb, r] = s
                dst_i[row, cb, r] = i
        cuda.syncthreads()
        for u in range(tid, UB, T):
            nb = _imin(cnt[u], B)
            if nb > 0:
                n_new = _imin(m, lc[u] + nb)
                lc[u] = n_new
                par[u] ^= 1
                if n_new == m:
                    dst_s, dst_i = (la_s, la_i) if par[u] == 0 else (lb_s, lb_i)
                    thr_s[u] = dst_s[g0 + u, cb, m - 1]
                    thr_i[u] = dst_i[g0 + u, cb, m - 1]
                cnt[u] = 0
        cuda.syncthreads()
    return flush


def lines(indent: int, items: list[str]) -> str:
    """Source lines (each may hold newlines) indented for a template placeholder."""
    pad = " " * indent
    return "\n".join(pad + x.replace("\n", "\n" + pad) for x in items)


def build(src: str, name: str, env: dict, regs: int = 0):  # noqa: ANN201
    """exec a generated kernel source and cuda.jit it; regs > 0 caps registers per thread
    (the rare merge code may then spill, the scoring loop should not)."""
    env = {"cuda": cuda, "float32": float32, "int32": int32, "int64": int64, "uint64": uint64,
           "math": math, "_imin": _imin, "_excluded": _excluded, "SENTINEL": SENTINEL, **env}
    exec(compile(src, f"<{name}>", "exec"), env)  # noqa: S102
    opts = {"max_registers": regs} if regs and not config.ENABLE_CUDASIM else {}
    return cuda.jit(**opts)(env["kernel"])


# Kernel start: every pass-1 kernel has this signature; acc / own_u / own_i hold the scores
# a thread owns after scoring a round, with their user slot and item index.
HEAD = """
def kernel(users, flat, n_items, dim, indptr, excl, u_off, n_users, chunk, m, la_s, la_i, lb_s, lb_i):
    tid = cuda.threadIdx.x
    cb = cuda.blockIdx.x
    g0 = cuda.blockIdx.y * UB
    c0 = cb * chunk
    c1 = _imin(n_items, c0 + chunk)
    buf_s = cuda.shared.array(NB, float32)
    buf_i = cuda.shared.array(NB, int32)
    thr_s = cuda.shared.array(UB, float32)
    thr_i = cuda.shared.array(UB, int32)
    cnt = cuda.shared.array(UB, int32)
    lc = cuda.shared.array(UB, int32)
    par = cuda.shared.array(UB, int32)
    ex_lo = cuda.shared.array(UB, int64)
    ex_hi = cuda.shared.array(UB, int64)
    acc = cuda.local.array(NOWN, float32)
    own_u = cuda.local.array(NOWN, int32)
    own_i = cuda.local.array(NOWN, int64)
    for u in range(tid, UB, T):
        thr_s[u] = -math.inf
        thr_i[u] = SENTINEL
        cnt[u] = 0
        lc[u] = 0
        par[u] = 0
        g = u_off + g0 + u
        ex_lo[u] = indptr[g] if g0 + u < n_users else 0
        ex_hi[u] = indptr[g + 1] if g0 + u < n_users else 0
"""

# Admission of one round's owned scores (`pend`: bit a set = acc[a] still to place), at
# 8 spaces inside the kernel's item loop; a full buffer makes the whole block flush.
ADMIT = """
        while True:
            for a in range(NOWN):
                bit = int64(1) << a
                if pend & bit:
                    u = own_u[a]
                    s = acc[a]
                    ix = own_i[a]
                    ts = thr_s[u]
                    if not (s > ts or (s == ts and ix < thr_i[u])):
                        pend &= ~bit
                    elif _excluded(excl, ex_lo[u], ex_hi[u], ix):
                        pend &= ~bit
                    else:
                        p = cuda.atomic.add(cnt, u, 1)
                        if p < B:
                            buf_s[u * B + p] = s
                            buf_i[u * B + p] = ix
                            pend &= ~bit
            if not cuda.syncthreads_or(int32(1 if pend != 0 else 0)):
                break
            flush(g0, cb, m, la_s, la_i, lb_s, lb_i, buf_s, buf_i, cnt, lc, par, thr_s, thr_i)
"""

# Kernel end: last flush, then each user's list into la (padded), wherever it ended.
TAIL = """
    flush(g0, cb, m, la_s, la_i, lb_s, lb_i, buf_s, buf_i, cnt, lc, par, thr_s, thr_i)
    for e in range(tid, UB * m, T):
        u = e // m
        p = e - u * m
        row = g0 + u
        if row < n_users:
            if p >= lc[u]:
                la_s[row, cb, p] = -math.inf
                la_i[row, cb, p] = SENTINEL
            elif par[u] == 1:
                la_s[row, cb, p] = lb_s[row, cb, p]
                la_i[row, cb, p] = lb_i[row, cb, p]
"""


def make_merge(threads: int, sort_cap: int):  # noqa: ANN201
    """Pass-2 kernel: merge `group` sorted lists per user into the best out.shape[2]."""
    bitonic = make_bitonic(threads)

    @cuda.jit
    def merge(in_s, in_i, group, run, n_sort, out_s, out_i):  # noqa: ANN001, ANN202
        tid = cuda.threadIdx.x
        row = cuda.blockIdx.y
        g0 = cuda.blockIdx.x * group
        n_lists = in_s.shape[1]
        m_in = in_s.shape[2]
        keys = cuda.shared.array(sort_cap, float32)
        idx = cuda.shared.array(sort_cap, int32)
        for e in range(tid, n_sort, threads):
            r = e // run
            off = e - r * run
            if r % 2 == 1:  # odd runs reversed: pairs of runs are bitonic sequences
                off = run - 1 - off
            lst = g0 + r
            if r < group and lst < n_lists and off < m_in:
                keys[e] = in_s[row, lst, off]
                idx[e] = in_i[row, lst, off]
            else:
                keys[e] = -math.inf
                idx[e] = SENTINEL
        cuda.syncthreads()
        bitonic(keys, idx, n_sort, 2 * run, n_sort)
        for p in range(tid, out_s.shape[2], threads):
            out_s[row, cuda.blockIdx.x, p] = keys[p]
            out_i[row, cuda.blockIdx.x, p] = idx[p]

    return merge
