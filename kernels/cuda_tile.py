"""Pass-1 "tile" kernel for larger user batches: a GEMM-like register tile per thread.

A block owns UB = TY*UT users and a chunk of items, walked in tiles of TI = TX*IT items.
Each tile is staged DC dimensions at a time in shared memory (items and users transposed,
padded so the staging stores hit distinct banks); each thread accumulates a UT×IT tile in
float32 registers, reading users by broadcast and items conflict-free. Selection and the
per-block lists are the shared machinery of cuda_select.
"""

from __future__ import annotations

import numpy as np

from .cuda_select import ADMIT, HEAD, TAIL, build, lines, make_flush


def pad_stride(n: int, dc: int) -> int:
    """Row stride >= n of a transposed shared tile [dc, n] such that a warp storing dc
    consecutive dimensions of 32/dc rows hits 32 distinct banks."""
    want = (32 // dc) % 32
    s = n
    while s % 32 != want:
        s += 1
    return s


BODY = """
    txi = tid & (TX - 1)
    tyi = tid >> TXS
    sh_it = cuda.shared.array(SHI, float32)
    sh_u = cuda.shared.array(SHU, float32)
    stp = cuda.shared.array(1, uint64)
    stp[0] = uint64(RS * dim)
    srow = tid >> DCS  # staging: this thread's row (+ q * T / DC) and dimension
    scol = tid & (DC - 1)
    sb = uint64(scol * SI + srow)
    ib = txi  # compute: items txi + j * TX, users ub + uu
    ub = tyi * UT
    cuda.syncthreads()
    for t0 in range(c0, c1, TI):
{zero}
        for d0 in range(0, dim, DC):
            col = d0 + scol
            cok = col < dim
            cu = uint64(col)
            if t0 + TI <= c1 and d0 + DC <= dim:
                fi = uint64((t0 + srow) * dim + col)
                step = stp[0]  # read from shared memory so the address steps are not hoisted
{stage}
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
"""


def make_tile(tx: int, ty: int, ut: int, it: int, dc: int, buf: int, regs: int = 0):  # noqa: ANN201
    """Tile kernel for blocks of tx*ty threads, each scoring ut users × it items."""
    T, UB, TI, NOWN = tx * ty, ty * ut, tx * it, ut * it
    SI, SU = pad_stride(TI, dc), pad_stride(UB, dc)
    LI, LU, RS = TI * dc // T, -(-UB * dc // T), T // dc  # staged per thread; row step
    assert T % dc == 0 and NOWN <= 64 and tx & (tx - 1) == 0 and dc & (dc - 1) == 0
    assert buf & (buf - 1) == 0
    stage = [f"v{q} = float32(flat[fi])\nfi += step" for q in range(LI)]
    stage += [f"sh_it[sb + S{q}] = v{q}" for q in range(LI)]
    users = [f"uu = srow + {q * RS}\n"
             f"if uu < {UB}:\n"
             f"    ok = cok and g0 + uu < n_users\n"
             f"    v = users[uint64(u_off + g0 + uu), cu] if ok else float32(0.0)\n"
             f"    sh_u[scol * {SU} + uu] = v" for q in range(LU)]
    compute = [line for dd in range(dc) for line in (
        [f"x{j} = sh_it[ib + {dd * SI + j * tx}]" for j in range(it)]
        + [x for uu in range(ut) for x in (
            [f"w = sh_u[ub + {dd * SU + uu}]"] + [f"a{uu * it + j} += w * x{j}" for j in range(it)])]
    )]
    save = [f"acc[{uu * it + j}] = a{uu * it + j}\n"
            f"own_u[{uu * it + j}] = ub + {uu}\n"
            f"own_i[{uu * it + j}] = t0 + ib + {j * tx}" for uu in range(ut) for j in range(it)]
    save += ["pend = int64(0)"]
    save += [f"if t0 + ib + {j * tx} < c1 and g0 + ub + {uu} < n_users:\n"
             f"    pend |= int64(1) << {uu * it + j}" for uu in range(ut) for j in range(it)]
    body = BODY.format(zero=lines(8, [f"a{i} = float32(0.0)" for i in range(NOWN)]),
                       stage=lines(16, stage), users=lines(12, users), compute=lines(12, compute),
                       save=lines(8, save))
    env = {"flush": make_flush(UB, buf, T), "TX": tx, "UT": ut, "DC": dc, "SI": SI, "UB": UB,
           "TI": TI, "T": T, "B": buf, "LI": LI, "RS": RS, "NB": UB * buf, "NOWN": NOWN,
           "SHI": dc * SI, "SHU": dc * SU, "DCS": dc.bit_length() - 1, "TXS": tx.bit_length() - 1,
           **{f"S{q}": np.uint64(q * RS) for q in range(LI)}}
    return build(HEAD + body + ADMIT + TAIL, f"tile {tx}x{ty} ut={ut} it={it} dc={dc}", env, regs)
