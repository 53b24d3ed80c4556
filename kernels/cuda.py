"""Numba CUDA top-k in two passes, so the full U×N score matrix never exists.

Pass 1: blocks of UB users × one chunk of items score with float32 accumulation and keep
each (user, chunk)'s best m = min(k, chunk) in a sorted list, admitting a score only when
it beats the running m-th best (cuda_select). Small batches use the stream kernel (rows
read once, contiguously, per 16 users: cuda_stream), large ones the register-tile kernel
(cuda_tile). Pass 2 merges groups of those lists (bitonic merge of pre-sorted runs) until
one list of k remains.

Items may already live on the GPU (`to_device`, or any `__cuda_array_interface__` array,
e.g. a CuPy array or a torch CUDA tensor); then only users, exclusions and results move.
Buffers and launch configurations are cached per shape (`_Plan`): no allocation per call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numba import config, cuda

from .cuda_select import SENTINEL, make_merge
from .cuda_stream import make_stream
from .cuda_tile import make_tile
from .validate import KernelInputError, empty_result, sort_rows

# The simulator runs every CUDA thread as a Python thread: same kernels, tiny blocks.
_SIM = bool(config.ENABLE_CUDASIM)
SORT_CAP = 512 if _SIM else 4096  # entries one merge block sorts in shared memory
MERGE_THREADS = 16 if _SIM else 256
MAX_K = SORT_CAP // 2
PARTIAL_BYTES = 1 << 20 if _SIM else 256 << 20  # pass-1 lists per user batch
MIN_CHUNK_PER_K = 4  # a chunk holds at least 4k items, so pass-1 lists stay a small share


@dataclass(frozen=True)
class Stream:
    """Stream pass 1 (cuda_stream): `warps` warps per block, each scoring ipw rows for ub users."""

    ub: int
    ipw: int
    buf: int  # shared candidate buffer per user (power of two)
    warps: int = 8
    regs: int = 128  # register cap per thread (0: none); 128 lets two blocks share an SM

    @property
    def users(self) -> int:
        return self.ub

    @property
    def tile(self) -> int:
        return self.warps * self.ipw

    @property
    def threads(self) -> int:
        return self.warps * 32

    def build(self):  # noqa: ANN201
        return make_stream(self.ub, self.ipw, self.buf, self.warps, self.regs)


@dataclass(frozen=True)
class Tiling:
    """Tile pass 1 (cuda_tile): tx*ty threads, each scoring ut users × it items, dc dims a step."""

    tx: int
    ty: int
    ut: int
    it: int
    dc: int
    buf: int
    regs: int = 128

    @property
    def users(self) -> int:
        return self.ty * self.ut

    @property
    def tile(self) -> int:
        return self.tx * self.it

    @property
    def threads(self) -> int:
        return self.tx * self.ty

    def build(self):  # noqa: ANN201
        return make_tile(self.tx, self.ty, self.ut, self.it, self.dc, self.buf, self.regs)


# Pass-1 kernel by user-batch size: the smallest key >= the batch, else the largest. The
# stream kernel reads the items once per 16 users; the tile kernel wins on large batches.
if _SIM:
    KERNELS: dict[int, Stream | Tiling] = {1: Stream(1, 32, 8, warps=1), 2: Stream(2, 16, 8, warps=1),
                                           4: Tiling(4, 2, 2, 2, 4, 8), 8: Tiling(4, 2, 2, 2, 4, 8)}
else:
    KERNELS = {
        1: Stream(1, 32, 256),
        2: Stream(2, 16, 128),
        4: Stream(4, 8, 64),
        8: Stream(8, 4, 64),
        256: Stream(16, 4, 64),
        1 << 30: Tiling(32, 8, 8, 8, 8, 32),
    }
TILE = max(t.tile for t in KERNELS.values())  # largest item tile of pass 1

_lock = threading.Lock()
_kernels: dict[object, object] = {}


def pick_kernel(n_users: int) -> Stream | Tiling:
    """The pass-1 kernel for a batch of n_users (see KERNELS)."""
    for ub in sorted(KERNELS):
        if n_users <= ub:
            return KERNELS[ub]
    return KERNELS[max(KERNELS)]


def _pass1_kernel(t: Stream | Tiling):  # noqa: ANN202
    if t not in _kernels:
        _kernels[t] = t.build()
    return _kernels[t]


def _merge_kernel():  # noqa: ANN202
    if "merge" not in _kernels:
        _kernels["merge"] = make_merge(MERGE_THREADS, SORT_CAP)
    return _kernels["merge"]


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def to_device(items: np.ndarray) -> object:
    """Copy validated item vectors (float32/float16) to the GPU once, for repeated topk calls."""
    return cuda.to_device(np.ascontiguousarray(items))


def device_items(items: object) -> object:
    """A Numba device view of a GPU array (no copy); checks shape and dtype."""
    d = items if cuda.is_cuda_array(items) and hasattr(items, "copy_to_host") else cuda.as_cuda_array(items)
    if d.ndim != 2 or d.dtype not in (np.float32, np.float16):
        raise KernelInputError(f"device items must be a 2-D float32/float16 array; got {d.dtype} {d.shape}")
    if not d.is_c_contiguous():
        raise KernelInputError("device items must be C-contiguous")
    return d


def _plan(n_users: int, n_items: int, k: int, t: Stream | Tiling) -> tuple[int, int, int]:
    """(chunk, n_chunks, m) for one user batch: enough blocks to fill the GPU twice."""
    n_sm = 4 if _SIM else cuda.get_current_device().MULTIPROCESSOR_COUNT
    groups = -(-n_users // t.users)
    tiles = -(-n_items // t.tile)
    want = max(1, -(-4 * n_sm // groups))
    cap = max(1, n_items // max(t.tile, MIN_CHUNK_PER_K * k))
    n_chunks = max(1, min(tiles, want, cap))
    chunk = -(-tiles // n_chunks) * t.tile
    n_chunks = -(-n_items // chunk)
    return chunk, n_chunks, min(k, chunk)


def topk_cuda(
    users: np.ndarray, items: object, k: int, indptr: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Numba CUDA top-k over validated inputs (see `mmrec.kernels.topk`); k <= MAX_K.

    `items` is a host array (copied per call) or a device array (used in place).
    """
    n_users = users.shape[0]
    n_items = items.shape[0]
    if k > MAX_K:
        raise KernelInputError(f"backend='cuda' supports k <= {MAX_K}; got k={k}")
    if n_items >= SENTINEL:
        raise KernelInputError(f"backend='cuda' supports fewer than {SENTINEL} items")
    out_i, out_s = empty_result(n_users, k)
    if n_users == 0 or n_items == 0:
        return out_i, out_s
    d_items = items if not isinstance(items, np.ndarray) else cuda.to_device(items)
    excl = sort_rows(indptr, ids) if ids.size else None
    with _lock:
        return _run(users, d_items, k, indptr, excl, out_i, out_s)


def _schedule(n_lists: int, m: int, k: int) -> list[tuple[int, int, int, int]]:
    """Pass-2 rounds as (group, run, n_out, m_out) until one list per user remains."""
    rounds = []
    while n_lists > 1:
        run = _pow2(m)
        group = min(SORT_CAP // run, _pow2(n_lists))
        n_out = -(-n_lists // group)
        m_out = min(k, group * m, n_lists * m)
        rounds.append((group, run, n_out, m_out))
        n_lists, m = n_out, m_out
    return rounds


class _Plan:
    """Device buffers, views and configured launches for one (U, N, D, k, kernel) shape.

    Building one costs many small Python objects and allocations (milliseconds); cached
    plans make a repeated query cost one users upload, the launches and two result copies.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, k: int) -> None:
        t = self.kernel = pick_kernel(n_users)
        self.chunk, self.n_chunks, self.m = _plan(n_users, n_items, k, t)
        per_user = 16 * self.n_chunks * self.m
        batch = max(t.users, min(n_users, PARTIAL_BYTES // per_user) // t.users * t.users)
        self.batch = batch = min(batch, n_users)
        rounds = _schedule(self.n_chunks, self.m, k)
        q_elems = max([batch * n_out * m_out for _, _, n_out, m_out in rounds], default=1)
        self.d_users = cuda.device_array((n_users, dim), np.float32)
        self.no_indptr = cuda.to_device(np.zeros(n_users + 1, np.int64))
        self.no_excl = cuda.to_device(np.zeros(1, np.int64))
        lists = [cuda.device_array((batch, self.n_chunks, self.m), dt) for dt in (np.float32, np.int32) * 2]
        qbufs = [cuda.device_array(q_elems, dt) for dt in (np.float32, np.int32) * 2]
        pass1 = _pass1_kernel(t)
        merge = _merge_kernel()
        self.batches = []
        for u0 in range(0, n_users, batch):
            nb = min(batch, n_users - u0)
            la = [a[:nb] for a in lists]
            launch1 = pass1[(self.n_chunks, -(-nb // t.users)), t.threads]
            merges = []
            ps, pi = la[0], la[1]
            for r, (group, run, n_out, m_out) in enumerate(rounds):
                shape = (nb, n_out, m_out)
                qs = qbufs[2 * (r % 2)][: nb * n_out * m_out].reshape(shape)
                qi = qbufs[2 * (r % 2) + 1][: nb * n_out * m_out].reshape(shape)
                merges.append((merge[(n_out, nb), MERGE_THREADS], (ps, pi, group, run, group * run, qs, qi)))
                ps, pi = qs, qi
            self.batches.append((u0, nb, launch1, la, merges, ps, pi))

    def run(self, users, d_items, k, indptr, excl, out_i, out_s):  # noqa: ANN001, ANN201
        self.d_users.copy_to_device(users)
        if excl is None:
            d_indptr, d_excl = self.no_indptr, self.no_excl
        else:
            d_indptr, d_excl = cuda.to_device(indptr), cuda.to_device(excl)
        flat = d_items.reshape(-1)
        n_items, dim = d_items.shape
        for u0, nb, launch1, la, merges, ps, pi in self.batches:
            launch1(self.d_users, flat, n_items, dim, d_indptr, d_excl, u0, nb, self.chunk, self.m, *la)
            for launch, args in merges:
                launch(*args)
            s = ps.copy_to_host()[:, 0, :]
            i = pi.copy_to_host()[:, 0, :].astype(np.int64)
            pad = i == SENTINEL
            w = s.shape[1]
            out_s[u0 : u0 + nb, :w] = np.where(pad, -np.inf, s)
            out_i[u0 : u0 + nb, :w] = np.where(pad, -1, i)
        return out_i, out_s


_plans: OrderedDict[tuple, _Plan] = OrderedDict()
MAX_PLANS = 4


def _run(users, d_items, k, indptr, excl, out_i, out_s):  # noqa: ANN001, ANN202
    key = (users.shape[0], d_items.shape[0], d_items.shape[1], k, pick_kernel(users.shape[0]))
    plan = _plans.pop(key, None) or _Plan(users.shape[0], d_items.shape[0], d_items.shape[1], k)
    _plans[key] = plan
    while len(_plans) > MAX_PLANS:
        _plans.popitem(last=False)
    return plan.run(users, d_items, k, indptr, excl, out_i, out_s)
