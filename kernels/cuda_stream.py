"""Pass-1 "stream" kernel for small user batches (UB <= 16): items read once, row-contiguous.

Each warp takes IPW item rows per round; lane l reads dimensions l, l+32, ... of every row,
so each load instruction reads 128 contiguous bytes and the rows stream from memory in
order. The UB user vectors sit in shared memory (transposed, odd stride: conflict-free);
every lane accumulates UB×IPW float32 partial dot products, which a butterfly
reduce-scatter over the warp's shuffles (NV-1 shuffles for NV partials) leaves as NV/32
finished scores per lane. Selection and the per-block lists are cuda_select's.
"""

from __future__ import annotations

from numba import config

from .cuda_select import ADMIT, HEAD, TAIL, build, lines, make_flush

BODY = """
    lane = tid & 31
    warp = tid >> 5
    sh_u = cuda.shared.array(SHU, float32)
    sdim = cuda.shared.array(1, uint64)
    xch = cuda.shared.array(XCH, float32)
    sdim[0] = uint64(dim)
    resident = dim <= DU
    if resident:
        for e in range(tid, UB * dim, T):
            uu = e // dim
            d = e - uu * dim
            sh_u[d * SU + uu] = users[u_off + g0 + uu, d] if g0 + uu < n_users else float32(0.0)
    cuda.syncthreads()
    for r0 in range(c0, c1, ROUND):
        i0 = r0 + warp * IPW
        nv = c1 - i0  # rows of this warp that exist
{zero}
        for dc0 in range(0, dim, DU):
            dend = _imin(dim, dc0 + DU)
            if not resident:
                cuda.syncthreads()
                for e in range(tid, UB * DU, T):
                    uu = e // DU
                    d = dc0 + e - uu * DU
                    ok = g0 + uu < n_users and d < dend
                    sh_u[(d - dc0) * SU + uu] = users[u_off + g0 + uu, d] if ok else float32(0.0)
                cuda.syncthreads()
            base = uint64(i0 * dim) if nv > 0 else uint64(0)
            ds = sdim[0]  # read from shared memory so the row offsets are not hoisted
            d = dc0 + lane
            ok = d < dend
{prologue}
            for d0 in range(dc0, dend, 32):
{step}
{reduce}
"""


def _reduce(nv: int) -> list[str]:
    """Butterfly reduce-scatter of p0..p{nv-1} over a warp: lane l ends with the sums of
    partials nown*l .. nown*l+nown-1 in p0..p{nown-1} (nv a multiple of 32). The simulator
    has no shuffles: there the exchange goes through shared memory (same semantics)."""
    out, h = [], nv
    for o in (16, 8, 4, 2, 1):
        h //= 2
        out.append(f"lo = (lane & {o}) == 0")
        for i in range(h):
            out.append(f"a = p{i}\nb = p{i + h}\nsnd = b if lo else a\nkeep = a if lo else b")
            if config.ENABLE_CUDASIM:
                out.append(f"xch[tid] = snd\ncuda.syncthreads()\nrcv = xch[tid ^ {o}]\n"
                           f"cuda.syncthreads()\np{i} = keep + rcv")
            else:
                out.append(f"p{i} = keep + cuda.shfl_xor_sync(0xFFFFFFFF, snd, {o})")
    return out


def make_stream(ub: int, ipw: int, buf: int, warps: int = 8, regs: int = 0):  # noqa: ANN201
    """Stream kernel: `warps` warps per block, each scoring ipw rows for ub users per round."""
    T, NV = warps * 32, ub * ipw
    NOWN = NV // 32
    SU = ub if ub == 1 else ub + 1  # odd stride: lanes reading different rows hit distinct banks
    DU = (9216 // SU) // 32 * 32  # dimensions of users held in shared memory at once (36 KB)
    assert NV % 32 == 0 and NOWN <= 64 and buf & (buf - 1) == 0
    prefetch = ipw <= 8  # few rows per lane: overlap the next step's loads with this one's FMAs

    def loads(dst: str, okv: str) -> list[str]:
        return ["q = base + uint64(d)"] + [
            f"{dst}{j} = float32(flat[q]) if ({okv} and {j} < nv) else float32(0.0)\nq += ds"
            for j in range(ipw)]

    fmas = ["su = (d - dc0) * SU if ok else 0"] + [
        x for uu in range(ub) for x in (
            [f"w = sh_u[su + {uu}]"] + [f"p{uu * ipw + j} += w * x{j}" for j in range(ipw)])]
    if prefetch:
        prologue = loads("x", "ok")
        step = (["dn = d + 32", "okn = dn < dend", "dd = d", "d = dn"] + loads("y", "okn")
                + ["d = dd"] + fmas + [f"x{j} = y{j}" for j in range(ipw)] + ["d = dn", "ok = okn"])
    else:
        prologue = []
        step = ["d = d0 + lane", "ok = d < dend"] + loads("x", "ok") + fmas
    save = [f"acc[{r}] = p{r}\n"
            f"own_u[{r}] = (lane * {NOWN} + {r}) // {ipw}\n"
            f"own_i[{r}] = i0 + (lane * {NOWN} + {r}) % {ipw}" for r in range(NOWN)]
    save += ["pend = int64(0)"]
    save += [f"if own_i[{r}] < c1 and g0 + own_u[{r}] < n_users:\n    pend |= int64(1) << {r}"
             for r in range(NOWN)]
    body = BODY.format(zero=lines(8, [f"p{i} = float32(0.0)" for i in range(NV)]),
                       prologue=lines(12, prologue), step=lines(16, step),
                       reduce=lines(8, _reduce(NV) + save))
    env = {"flush": make_flush(ub, buf, T), "UB": ub, "IPW": ipw, "T": T, "B": buf,
           "NB": ub * buf, "NOWN": NOWN, "SU": SU, "DU": DU, "SHU": DU * SU, "ROUND": warps * ipw,
           "XCH": T if config.ENABLE_CUDASIM else 1}
    return build(HEAD + body + ADMIT + TAIL, f"stream ub={ub} ipw={ipw}", env, regs)
