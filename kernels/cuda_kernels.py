"""Numba CUDA device code for top-k: a scoring pass with per-block partial top-m lists, and a
merge pass. Kernels are built by factories so tile sizes are compile-time constants (the
per-thread accumulators then live in registers).

Pass 1 (`make_pass1`): a block owns UB = TY*UT users and a contiguous chunk of items. It walks
the chunk in tiles of TI = TX*IT items; each tile is staged DC dimensions at a time in shared
memory (items transposed, users too) and every thread accumulates a UT×IT register tile in
float32. A score is admitted only if it beats the user's running threshold (the block's
current m-th best), is not excluded (binary search in the user's sorted CSR row), and then
goes to a small shared buffer. A full buffer is bitonic-sorted and merged by rank into the
block's sorted list, kept in global memory (ping-pong pair), which raises the threshold.
Pass 2 (`merge`): bitonic merges of groups of sorted lists, until one list per user remains.
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


def pad_stride(n: int, dc: int) -> int:
    """Row stride >= n of a transposed shared tile [dc, n] such that a warp storing dc
    consecutive dimensions of 32/dc rows hits 32 distinct banks; a multiple of 4 floats."""
    want = (32 // dc) % 32
    s = n
    while s % 32 != want:
        s += 1
    return s


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


def make_pass1(tx: int, ty: int, ut: int, it: int, dc: int, buf: int, regs: int = 0):  # noqa: ANN201
    """Pass-1 kernel for blocks of tx*ty threads, each scoring ut users × it items; regs > 0
    caps registers per thread (the rare merge code may then spill, the scoring loop not)."""
    T, UB, TI, NACC = tx * ty, ty * ut, tx * it, ut * it
    SI, SU, NB, B = pad_stride(tx * it, dc), pad_stride(ty * ut, dc), ty * ut * buf, buf
    LI, LU, RS = TI * dc // T, -(-UB * dc // T), T // dc  # staged per thread; row step
    assert T % dc == 0 and NACC <= 64 and tx & (tx - 1) == 0 and dc & (dc - 1) == 0 and B & (B - 1) == 0
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

    def stage() -> str:
        """Stage one DC-wide slice of a full item tile in shared memory: every load first,
        addresses stepping by a value read from shared memory (so none are hoisted)."""
        load = [f"v{q} = float32(flat[fi])\nfi += step" for q in range(LI)]
        store = [f"sh_it[sb + S{q}] = v{q}" for q in range(LI)]
        return _lines(16, load + store)

    src = _PASS1.format(
        zero=_lines(8, [f"a{i} = float32(0.0)" for i in range(NACC)]),
        fast=stage(),
        users=_lines(12, [f"uu = srow + {q * RS}\n"
                          f"if uu < {UB}:\n"
                          f"    ok = cok and g0 + uu < n_users\n"
                          f"    sh_u[scol * {SU} + uu] = users[uint64(u_off + g0 + uu), cu] if ok else float32(0.0)"
                          for q in range(LU)]),
        compute=_lines(12, [
            line for dd in range(dc) for line in (
                [f"x{j} = sh_it[ib + {dd * SI + j * tx}]" for j in range(it)]
                + [x for uu in range(ut) for x in (
                    [f"w = sh_u[ub + {dd * SU + uu}]"]
                    + [f"a{uu * it + j} += w * x{j}" for j in range(it)])]
            )]),
        save=_lines(8, [f"acc[{i}] = a{i}" for i in range(NACC)]),
    )
    env = {"cuda": cuda, "float32": float32, "int32": int32, "int64": int64, "math": math,
           "_imin": _imin, "_excluded": _excluded, "flush": flush, "SENTINEL": SENTINEL,
           "TX": tx, "IT": it, "UT": ut, "DC": dc, "SI": SI, "SU": SU, "UB": UB, "TI": TI,
           "T": T, "B": B, "LI": LI, "RS": RS, "NB": NB, "NACC": NACC, "SHI": dc * SI, "SHU": dc * SU,
           "uint64": uint64, "DCS": dc.bit_length() - 1, "TXS": tx.bit_length() - 1, "QS": np.uint64(RS),
           **{f"S{q}": np.uint64(q * RS) for q in range(LI)}}
    exec(compile(src, f"<pass1 {tx}x{ty} ut={ut} it={it} dc={dc}>", "exec"), env)  # noqa: S102
    opts = {"max_registers": regs} if regs and not config.ENABLE_CUDASIM else {}
    pass1 = cuda.jit(**opts)(env["pass1"])
    return pass1


def _lines(indent: int, lines: list[str]) -> str:
    pad = " " * indent
    return "\n".join(pad + x.replace("\n", "\n" + pad) for x in lines)


# Pass 1 as source: the {placeholders} expand into straight-line code (unrolled over the
# tile constants), so accumulators are scalars in registers and shared-memory offsets
# are constants; Numba does not unroll loops itself.
_PASS1 = """
def pass1(users, flat, n_items, dim, indptr, excl, u_off, n_users, chunk, m, la_s, la_i, lb_s, lb_i):
    tid = cuda.threadIdx.x
    txi = tid & (TX - 1)
    tyi = tid >> TXS
    cb = cuda.blockIdx.x
    g0 = cuda.blockIdx.y * UB
    c0 = cb * chunk
    c1 = _imin(n_items, c0 + chunk)
    sh_it = cuda.shared.array(SHI, float32)
    sh_u = cuda.shared.array(SHU, float32)
    buf_s = cuda.shared.array(NB, float32)
    buf_i = cuda.shared.array(NB, int32)
    thr_s = cuda.shared.array(UB, float32)
    thr_i = cuda.shared.array(UB, int32)
    cnt = cuda.shared.array(UB, int32)
    lc = cuda.shared.array(UB, int32)
    par = cuda.shared.array(UB, int32)
    ex_lo = cuda.shared.array(UB, int64)
    ex_hi = cuda.shared.array(UB, int64)
    acc = cuda.local.array(NACC, float32)
    stp = cuda.shared.array(1, uint64)
    stp[0] = uint64(RS * dim)
    for u in range(tid, UB, T):
        thr_s[u] = -math.inf
        thr_i[u] = SENTINEL
        cnt[u] = 0
        lc[u] = 0
        par[u] = 0
        g = u_off + g0 + u
        ex_lo[u] = indptr[g] if g0 + u < n_users else 0
        ex_hi[u] = indptr[g + 1] if g0 + u < n_users else 0
    srow = tid >> DCS  # staging: this thread's row (+ q * T / DC) and dimension
    scol = tid & (DC - 1)
    sb = uint64(scol * SI + srow)
    ib = txi  # compute: items txi + j * TX, users ub + uu
    ub = tyi * UT
    c1u = uint64(c1)
    cuda.syncthreads()
    for t0 in range(c0, c1, TI):
{zero}
        for d0 in range(0, dim, DC):
            col = d0 + scol
            cok = col < dim
            cu = uint64(col)
            if t0 + TI <= c1 and d0 + DC <= dim:
                fi = uint64((t0 + srow) * dim + col)
                step = stp[0]
{fast}
            else:
                rr = t0 + srow
                for q in range(LI):
                    v = float32(flat[uint64(rr * dim + col)]) if (cok and rr < c1) else float32(0.0)
                    sh_it[scol * SI + srow + q * RS] = v
                    rr += RS
{users}
            cuda.syncthreads()
{compute}
            cuda.syncthreads()
{save}
        pend = int64(0)
        for uu in range(UT):
            for j in range(IT):
                if t0 + ib + j * TX < c1 and g0 + ub + uu < n_users:
                    pend |= int64(1) << (uu * IT + j)
        while True:
            for uu in range(UT):
                u = ub + uu
                ts = thr_s[u]
                ti = thr_i[u]
                for j in range(IT):
                    bit = int64(1) << (uu * IT + j)
                    if pend & bit:
                        s = acc[uu * IT + j]
                        ix = t0 + ib + j * TX
                        if not (s > ts or (s == ts and ix < ti)):
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
