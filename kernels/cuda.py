"""Numba CUDA top-k in two passes, so the full U×N score matrix never exists.

Pass 1: blocks of UB users × one chunk of items score with float32 accumulation and keep
each (user, chunk)'s best m = min(k, chunk) in a sorted list, admitting a score only when
it beats the running m-th best (cuda_select). Small batches use the stream kernel (rows
read once, contiguously, per 16 users: cuda_stream), large ones the register-tile kernel
(cuda_tile). Pass 2 merges groups of those lists (bitonic merge of pre-sorted runs) until
one list of k remains.

Items may already live on the GPU (`to_device`, or any `__cuda_array_interface__` array,
e.g. a CuPy array or a torch CUDA tensor); then only users, exclusions and results move.
Scratch memory comes from one cached device buffer (no allocation per call).
"""

from __future__ import annotations

import threading
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
_scratch: list[object] = []


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


class _Carver:
    """Hands out typed views of one cached device byte buffer (grown when too small)."""

    def __init__(self, nbytes: int) -> None:
        if not _scratch or _scratch[0].size < nbytes:
            _scratch.clear()
            _scratch.append(cuda.device_array(max(nbytes, 1 << 20), np.uint8))
        self.buf = _scratch[0]
        self.off = 0

    def take(self, shape: tuple[int, ...], dtype: type) -> object:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        view = self.buf[self.off : self.off + n].view(dtype).reshape(shape)
        self.off += -(-n // 256) * 256
        return view


def _nbytes(shape: tuple[int, ...], dtype: type) -> int:
    return -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // 256) * 256


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
    excl = sort_rows(indptr, ids) if ids.size else np.zeros(1, np.int64)
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


def _run(users, d_items, k, indptr, excl, out_i, out_s):  # noqa: ANN001, ANN202
    n_users, n_items = users.shape[0], d_items.shape[0]
    t = pick_kernel(n_users)
    chunk, n_chunks, m = _plan(n_users, n_items, k, t)
    batch = max(t.users, min(n_users, PARTIAL_BYTES // (16 * n_chunks * m)) // t.users * t.users)
    batch = min(batch, n_users)
    rounds = _schedule(n_chunks, m, k)
    q_elems = max([batch * n_out * m_out for _, _, n_out, m_out in rounds], default=1)
    shapes = [(users.shape, np.float32), (indptr.shape, np.int64), (excl.shape, np.int64)]
    shapes += [((batch, n_chunks, m), dt) for dt in (np.float32, np.int32) * 2]
    shapes += [((q_elems,), dt) for dt in (np.float32, np.int32) * 2]
    mem = _Carver(sum(_nbytes(s, d) for s, d in shapes))
    d_users, d_indptr, d_excl = (mem.take(s, d) for s, d in shapes[:3])
    d_users.copy_to_device(users)
    d_indptr.copy_to_device(indptr)
    d_excl.copy_to_device(excl)
    lists = [mem.take(s, d) for s, d in shapes[3:7]]
    qbufs = [mem.take(s, d) for s, d in shapes[7:]]
    pass1 = _pass1_kernel(t)
    merge = _merge_kernel()
    for u0 in range(0, n_users, batch):
        nb = min(batch, n_users - u0)
        la_s, la_i, lb_s, lb_i = (a[:nb] for a in lists)
        pass1[(n_chunks, -(-nb // t.users)), t.threads](
            d_users, d_items.reshape(-1), n_items, d_items.shape[1], d_indptr, d_excl, u0, nb,
            chunk, m, la_s, la_i, lb_s, lb_i)
        ps, pi = la_s, la_i
        for r, (group, run, n_out, m_out) in enumerate(rounds):
            shape = (nb, n_out, m_out)
            qs = qbufs[2 * (r % 2)][: nb * n_out * m_out].reshape(shape)
            qi = qbufs[2 * (r % 2) + 1][: nb * n_out * m_out].reshape(shape)
            merge[(n_out, nb), MERGE_THREADS](ps, pi, group, run, group * run, qs, qi)
            ps, pi = qs, qi
        s = ps.copy_to_host()[:, 0, :]
        i = pi.copy_to_host()[:, 0, :].astype(np.int64)
        pad = i == SENTINEL
        w = s.shape[1]
        out_s[u0 : u0 + nb, :w] = np.where(pad, -np.inf, s)
        out_i[u0 : u0 + nb, :w] = np.where(pad, -1, i)
    return out_i, out_s
