"""Top-k as one library GEMM per score block (torch: cuBLAS, tensor cores for float16 items,
or the CPU BLAS), then an exact selection with `mmrec.kernels`' contract.

Why it exists: on a GPU a hand-written Numba kernel cannot reach cuBLAS's matmul rate
(Numba exposes no tensor-core instructions), so batches are better served by the vendor
GEMM; what stays ours is the contract: exclusions, ties to the smaller index, -1/-inf
padding, float32 scores, and no U×N matrix beyond one bounded score block. It lives
outside `mmrec.kernels`, which stays NumPy/Numba only; torch is imported when it runs.

Precision: float32 items use a float32 GEMM (torch's float32 matmul precision setting
applies; its default is full IEEE float32). Float16 items on CUDA use the tensor cores
with float32 accumulation and output, and each user is split into two float16 halves
(hi + lo of the user over a power-of-two scale), which keeps 22 of float32's 24 mantissa
bits; on the CPU they are widened per block to float32.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from mmrec.kernels import KernelInputError, check_for_device_items, check_inputs, empty_result

# Bytes of one score block (users × items, float32).
SCORE_BYTES = {"cuda": 1 << 30, "cpu": 64 << 20}
EMPTY_SLOT = np.iinfo(np.int64).max  # index of an empty slot: loses every tie


def torch_device(items: object) -> str:
    """Where the GEMM runs: the items' GPU, else CUDA when torch sees one, else the CPU."""
    import torch

    if isinstance(items, torch.Tensor):
        return "cuda" if items.is_cuda else "cpu"
    if hasattr(items, "__cuda_array_interface__") or torch.cuda.is_available():
        return "cuda"
    return "cpu"


def topk(users: Any, items: Any, k: int, exclude: tuple[np.ndarray, np.ndarray] | None = None,
         trusted_items: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`mmrec.kernels.topk`'s contract (arguments, result, errors) by GEMM + exact top-k.

    items may also be a torch tensor or any CUDA array (used in place; a GPU array is
    trusted to be finite, as for the CUDA kernel).
    """
    if _on_gpu(items):
        if len(items.shape) != 2:
            raise KernelInputError(f"items must be a 2-D array (rows, dim); got shape {tuple(items.shape)}")
        n, dim = (int(x) for x in items.shape)
        u, k, indptr, ids = check_for_device_items(users, n, dim, k, exclude)
        return topk_gemm(u, items, k, indptr, ids, device="cuda")
    if hasattr(items, "numpy"):  # a CPU torch tensor
        items = items.numpy()
    u, it, k, indptr, ids = check_inputs(users, items, k, exclude, "auto", items_finite=not trusted_items)
    return topk_gemm(u, it, k, indptr, ids)


def _on_gpu(items: Any) -> bool:
    return hasattr(items, "__cuda_array_interface__") or bool(getattr(items, "is_cuda", False))


def topk_gemm(users: np.ndarray, items: Any, k: int, indptr: np.ndarray, ids: np.ndarray,
              device: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by GEMM + exact selection over validated inputs (see `topk`)."""
    import torch

    device = device or torch_device(items)
    n_users, n_items = users.shape[0], int(items.shape[0])
    out_i, out_s = empty_result(n_users, k)
    if n_users == 0 or n_items == 0:
        return out_i, out_s
    dev = torch.device(device)
    it = torch.as_tensor(items, device=dev)
    if it.dtype not in (torch.float32, torch.float16):
        it = it.float()
    score = _scorer(torch.from_numpy(users).to(dev), it, dev)
    budget = SCORE_BYTES[dev.type]
    ub = min(n_users, max(1, budget // (4 * n_items)))
    chunk = min(n_items, max(1, budget // (4 * ub)))
    excl = _Exclusions(indptr, ids, dev)
    for u0 in range(0, n_users, ub):
        u1 = min(n_users, u0 + ub)
        best: tuple[Any, Any] | None = None
        for c0 in range(0, n_items, chunk):
            c1 = min(n_items, c0 + chunk)
            s = score(u0, u1, c0, c1)
            excl.mask(s, u0, u1, c0, c1)
            cs, ci = _chunk_topk(s, k)
            if c0:
                ci = ci + c0
            best = (cs, ci) if best is None else _merge(*best, cs, ci, k)
        bs, bi = (t.cpu().numpy() for t in best)
        # The contract's order (score desc, index asc) on the host: U×k values, no launches.
        order = np.lexsort((bi, -bs))
        bs, bi = np.take_along_axis(bs, order, 1), np.take_along_axis(bi, order, 1)
        pad = np.isneginf(bs)  # excluded (masked) or empty: scores of real items are finite
        w = bs.shape[1]
        out_s[u0:u1, :w] = np.where(pad, -np.inf, bs)
        out_i[u0:u1, :w] = np.where(pad, -1, bi)
    return out_i, out_s


def _scorer(users: Any, items: Any, dev: Any, mm16: Any = None) -> Any:
    """(u0, u1, c0, c1) -> float32 scores of users[u0:u1] × items[c0:c1].

    mm16(a, b): float16 [m, d] × float16 [n, d] -> float32 [m, n]; default cuBLAS on CUDA.
    """
    import torch

    if items.dtype == torch.float32:
        return lambda u0, u1, c0, c1: users[u0:u1] @ items[c0:c1].T
    if mm16 is None and (dev.type != "cuda" or not _fp16_gemm_with_fp32_out(dev)):
        # no float16 GEMM with float32 output here: widen one item block at a time
        return lambda u0, u1, c0, c1: users[u0:u1] @ items[c0:c1].float().T
    mm16 = mm16 or (lambda a, b: torch.mm(a, b.T, out_dtype=torch.float32))
    # Users as hi + lo float16 halves of u / 2^e (exact power-of-two scale per user): each
    # product with a float16 item is exact in float32, so only ~2 low mantissa bits are lost.
    _, e = torch.frexp(users.abs().amax(dim=1, keepdim=True))
    scale = torch.ldexp(torch.ones_like(users[:, :1]), e)
    unit = users / scale
    hi = unit.half()
    both = torch.cat([hi, (unit - hi.float()).half()])
    n = users.shape[0]

    def score(u0: int, u1: int, c0: int, c1: int) -> Any:
        s = mm16(torch.cat([both[u0:u1], both[n + u0 : n + u1]]), items[c0:c1])
        return (s[: u1 - u0] + s[u1 - u0 :]) * scale[u0:u1]

    return score


@functools.cache
def _fp16_gemm_with_fp32_out(dev: Any) -> bool:
    """Whether this torch has `mm(..., out_dtype=float32)` for float16 on this GPU (torch >= 2.8)."""
    import torch

    try:
        a = torch.ones(2, 2, dtype=torch.float16, device=dev)
        return torch.mm(a, a, out_dtype=torch.float32).dtype == torch.float32
    except (TypeError, RuntimeError, NotImplementedError):
        return False


class _Exclusions:
    """The exclusion CSR as (row, item) pairs sorted by item, masked into score blocks."""

    def __init__(self, indptr: np.ndarray, ids: np.ndarray, dev: Any) -> None:
        rows = np.repeat(np.arange(indptr.shape[0] - 1, dtype=np.int64), np.diff(indptr))
        order = np.argsort(ids, kind="stable")
        self.items, self.rows, self.dev = ids[order], rows[order], dev

    def mask(self, s: Any, u0: int, u1: int, c0: int, c1: int) -> None:
        import torch

        a, b = np.searchsorted(self.items, [c0, c1])
        r, c = self.rows[a:b], self.items[a:b]
        mine = (r >= u0) & (r < u1)
        if mine.any():
            rr = torch.from_numpy(r[mine] - u0).to(self.dev)
            cc = torch.from_numpy(c[mine] - c0).to(self.dev)
            s[rr, cc] = -torch.inf


def _chunk_topk(s: Any, k: int) -> tuple[Any, Any]:
    """The k best columns of each row of s by (score desc, column asc), in no set order.

    torch.topk picks arbitrarily among equal scores; the k-th place is ambiguous only
    where the (k+1)-th score equals the k-th, and those rows are redone exactly.
    """
    import torch

    n = s.shape[1]
    if n <= k:
        return s, torch.arange(n, device=s.device).expand(s.shape[0], n)
    v, i = torch.topk(s, k + 1, dim=1)
    amb = torch.nonzero(v[:, k - 1] == v[:, k]).flatten()
    v, i = v[:, :k], i[:, :k]
    if amb.numel():
        v, i = v.clone(), i.clone()
        rows = s[amb]
        t = v[amb, k - 1 : k]
        strict = rows > t
        eq = rows == t
        need = k - strict.sum(dim=1, keepdim=True)
        take = strict | (eq & (torch.cumsum(eq.to(torch.int32), dim=1) <= need))
        cols = torch.nonzero(take)[:, 1].view(-1, k)  # row-major: k columns per row
        i[amb] = cols
        v[amb] = torch.gather(rows, 1, cols)
    return v, i


def _merge(bs: Any, bi: Any, cs: Any, ci: Any, k: int) -> tuple[Any, Any]:
    """Running best ∪ a chunk's best -> the k best by (score desc, index asc); with one
    chunk (the usual case: a block holds ~1 GiB of scores) no merge runs at all."""
    import torch

    s, i = torch.cat([bs, cs], dim=1), torch.cat([bi, ci.to(torch.int64)], dim=1)
    i, o = torch.sort(i, dim=1, stable=True)
    s = torch.gather(s, 1, o)
    s, o = torch.sort(s, dim=1, descending=True, stable=True)
    i = torch.gather(i, 1, o)
    return s[:, :k], i[:, :k]
