"""A compressed scan of every row for one query: estimated scores for a shortlist.

Rows are kept in two small parts (built once, see mmrec.search.sketch): their coordinates on
the column's top principal directions (r int8s, one scale per direction), and the rest
of the row, the residual, as one sign bit per dimension after a random rotation (RaBitQ,
Gao & Long, SIGMOD 2024). A query's score against a row is estimated as

    coords · (Pᵀq)  +  fac · <signs, rotated residual of q>

where fac = |y|² / ‖y‖₁ for the row's rotated residual y makes the second term an
unbiased estimate of the residual's dot product. The query's rotated residual is cut
to QUERY_BITS-bit integers, so the bit part is QUERY_BITS popcounts per 64 dimensions
(1,408 dims: 88 popcounts and 176 bytes a row). The principal part carries data with a
low intrinsic dimension almost exactly; the bit part keeps isotropic data in reach.

The shortlist is then re-scored from int8 copies of the rows (`rescore`), which rank as
float32 would within ~1e-4, and the best few read in full by the caller.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .twin import parallel_kernel

QUERY_BITS = 4  # bits per dimension of the query's rotated residual
WORD = 64  # dimensions per code word
_MATH = {"reassoc", "contract"}  # lets LLVM vectorise the float sums


@intrinsic
def _popcount(typingctx, x):  # noqa: ANN001, ARG001 - numba intrinsic
    """LLVM's ctpop on a uint64 (a POPCNT instruction, or its vector form)."""
    def codegen(context, builder, signature, args):  # noqa: ANN001, ARG001
        fn = builder.module.declare_intrinsic("llvm.ctpop", [ir.IntType(64)])
        return builder.call(fn, args)

    return types.uint64(types.uint64), codegen


def words(dim: int) -> int:
    """Code words per row for dim dimensions."""
    return -(-dim // WORD)


def pack_signs(y: np.ndarray) -> np.ndarray:
    """(n, dim) floats -> (n, words(dim)) uint64: bit j of word w is y[:, 64w + j] > 0
    (the padding past dim is 0)."""
    n, dim = y.shape
    padded = np.zeros((n, words(dim) * WORD), bool)
    padded[:, :dim] = y > 0
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


def row_factors(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of rotated residuals y: fac = |y|² / ‖y‖₁ (0 for a zero row) and the
    number of positive signs (float32, the bit count of its code)."""
    l1 = np.abs(y).sum(axis=1, dtype=np.float64)
    sq = np.einsum("ij,ij->i", y, y, dtype=np.float64)
    fac = np.divide(sq, l1, out=np.zeros_like(sq), where=l1 > 0)
    return fac.astype(np.float32), (y > 0).sum(axis=1).astype(np.float32)


class QueryBits:
    """A query's rotated residual as QUERY_BITS bit planes: qy ≈ lo + step · Σ_b 2^b plane_b."""

    def __init__(self, qy: np.ndarray) -> None:
        qy = np.asarray(qy, np.float64)
        self.lo = float(qy.min())
        self.step = (float(qy.max()) - self.lo) / (2**QUERY_BITS - 1) or 1.0
        levels = np.rint((qy - self.lo) / self.step).astype(np.int64)
        self.planes = np.ascontiguousarray(
            np.concatenate([pack_signs((((levels >> b) & 1) - 0.5)[None, :]) for b in range(QUERY_BITS)]))
        self.total = float(qy.sum())  # Σ qy, exact: <signs, qy> = 2 Σ_{bit set} qy - Σ qy


def _int8(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 copy of x with one scale per slice along the other axis (its peak maps to 127;
    an all-zero slice gets scale 1)."""
    peak = np.abs(x).max(axis=axis, keepdims=True) if x.shape[axis] else np.zeros((1, x.shape[1]), x.dtype)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    return np.rint(x / scale).astype(np.int8), scale.reshape(-1)


def quantize_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 copies of the columns of x with one scale each: x ≈ q8 · scale[None, :]
    (the principal coordinates: each direction has its own spread)."""
    return _int8(x, axis=0)


def estimate(coords: np.ndarray, coord_scale: np.ndarray, codes: np.ndarray, fac: np.ndarray,
             ones: np.ndarray, qc: np.ndarray, qbits: QueryBits, out: np.ndarray | None = None) -> np.ndarray:
    """Estimated score (up to a constant shared by every row) of the query against every
    row: (coords (n, r) int8 · coord_scale) · qc (r,) + fac · <signs, qy>."""
    out = np.empty(len(codes), np.float32) if out is None else out
    qcs = np.ascontiguousarray(np.asarray(qc, np.float32) * coord_scale, np.float32)
    _estimate(coords, codes, fac, ones, qcs, qbits.planes, np.float32(qbits.lo), np.float32(qbits.step),
              np.float32(qbits.total), out)
    return out


@parallel_kernel(cache=True, fastmath=_MATH)
def _estimate(coords, codes, fac, ones, qcs, planes, lo, step, total, out):  # noqa: ANN001
    n, n_words = codes.shape
    r = coords.shape[1]
    n_planes = planes.shape[0]
    for i in prange(n):
        row = codes[i]
        acc = np.uint64(0)
        for b in range(n_planes):
            s = np.uint64(0)
            for w in range(n_words):
                s += _popcount(row[w] & planes[b, w])
            acc += s << np.uint64(b)
        # Σ_{bit set} qy ≈ lo · ones + step · acc
        bit = np.float32(2) * (lo * ones[i] + step * np.float32(acc)) - total
        c = coords[i]
        p = np.float32(0)
        for d in range(r):
            p += np.float32(c[d]) * qcs[d]
        out[i] = p + fac[i] * bit


def project(coords: np.ndarray, coord_scale: np.ndarray, qc: np.ndarray,
            out: np.ndarray | None = None) -> np.ndarray:
    """The principal part of `estimate` alone: (coords (n, r) int8 · coord_scale) · qc, for
    every row (an in-memory copy's candidate scan: a quarter of float32's bytes)."""
    out = np.empty(len(coords), np.float32) if out is None else out
    _project(coords, np.ascontiguousarray(np.asarray(qc, np.float32) * coord_scale, np.float32), out)
    return out


@parallel_kernel(cache=True, fastmath=_MATH)
def _project(coords, qcs, out):  # noqa: ANN001
    r = coords.shape[1]
    for i in prange(coords.shape[0]):
        c = coords[i]
        p = np.float32(0)
        for d in range(r):
            p += np.float32(c[d]) * qcs[d]
        out[i] = p


SAMPLE_STRIDE = 16  # shortlist: every 16th score guesses the threshold


def shortlist(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest scores, unordered (all of them if n >= len(scores)).

    A threshold read off every SAMPLE_STRIDE-th score keeps ~1.25 n rows with one compare
    per score; only those are partitioned (a full argpartition of 1M scores: ~5 ms)."""
    size = len(scores)
    if n >= size:
        return np.arange(size)
    sample = scores[::SAMPLE_STRIDE]
    rank = (n * 5 // 4) // SAMPLE_STRIDE + 8  # from the top of the sample
    if rank < len(sample) // 2:
        threshold = np.partition(sample, len(sample) - rank)[len(sample) - rank]
        kept = np.flatnonzero(scores >= threshold)
        if len(kept) >= n:
            return kept[np.argpartition(scores[kept], len(kept) - n)[len(kept) - n:]]
    return np.argpartition(scores, size - n)[size - n:]


def quantize_rows(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 copies of the rows of x with one scale each: x ≈ q8 · scale[:, None]."""
    return _int8(x, axis=1)


def rescore(q8: np.ndarray, scale: np.ndarray, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """query · x for the given rows, from their int8 copies (float32, ~1e-4 of |x||q|)."""
    out = np.empty(len(rows), np.float32)
    _rescore(q8, scale, np.ascontiguousarray(rows, np.int64), np.ascontiguousarray(query, np.float32), out)
    return out


@parallel_kernel(cache=True, fastmath=_MATH)
def _rescore(q8, scale, rows, q, out):  # noqa: ANN001
    dim = q.shape[0]
    for j in prange(rows.shape[0]):
        x = q8[rows[j]]
        acc = np.float32(0)
        for d in range(dim):
            acc += np.float32(x[d]) * q[d]
        out[j] = acc * scale[rows[j]]
