"""The scoring dispatcher: which top-k implementation serves a batch of users.

`mmrec.kernels` holds the NumPy/Numba kernels (no torch, by design); this adds the torch
GEMM route (`mmrec.scoring.gemm`) and picks: on a GPU with a CUDA build of torch, the GEMM
route (on the H100, 2026-11-23, N=1M, D=512, torch matmul + topk beat the Numba CUDA
kernel at every batch size measured: U=1 0.88 vs 1.81 ms, U=1024 34 vs 56 ms, float16
items 3.6-5x, because cuBLAS uses tensor cores Numba cannot reach); everywhere else
the kernels' own "auto" (Numba CPU at every batch size, Numba CUDA on a GPU without torch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrec import kernels as K

BACKENDS = (*K.BACKENDS, "torch")


def torch_cuda_available() -> bool:
    """True when torch is installed with CUDA and sees a GPU."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def prepare(items: np.ndarray, backend: str = "auto") -> Any:
    """Items ready to be scored many times (one user batch after another): on a GPU
    machine a device copy made once (a torch CUDA tensor for the torch route, a Numba
    device array for backend="cuda"), so later calls move only users; elsewhere the
    array itself. Check the array for NaN/inf first (`mmrec.kernels.check_finite`):
    device arrays are trusted."""
    if backend not in ("auto", "torch", "cuda") or not K.cuda_available():
        return items
    if backend != "cuda" and torch_cuda_available():
        import torch

        dtype = np.float16 if items.dtype == np.float16 else np.float32  # as the kernels take them
        return torch.as_tensor(np.ascontiguousarray(items, dtype=dtype), device="cuda")
    return K.to_device(items) if backend != "torch" else items


def topk(users: Any, items: Any, k: int, exclude: tuple[np.ndarray, np.ndarray] | None = None,
         backend: str = "auto", trusted_items: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`mmrec.kernels.topk` (same arguments, result and errors) with the "torch" backend
    added and chosen by "auto" on a GPU machine."""
    if backend not in BACKENDS:
        raise K.KernelInputError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "auto":
        gpu = K.cuda_available()  # numba.cuda first: no torch import on a CPU-only machine
        backend = "torch" if gpu and torch_cuda_available() else "auto"
    if backend == "torch":
        from mmrec.scoring.gemm import topk as gemm_topk

        return gemm_topk(users, items, k, exclude, trusted_items)
    return K.topk(users, items, k, exclude, backend, trusted_items)
