"""Batched "score + top-k, excluding seen items" over users × items; NumPy/Numba only.

Ordering contract (every backend): scores descending; equal scores put the smaller item
index first; rows with fewer than k candidates end with index -1 / score -inf. Scores
are float32 dot products accumulated in float32 (float16 items are widened first).

Numba (and numba.cuda) are imported only when a kernel runs.
"""

from __future__ import annotations

import numpy as np

from .validate import BACKENDS, BackendUnavailableError, KernelInputError, check_inputs

__all__ = ["BACKENDS", "BackendUnavailableError", "KernelInputError", "cuda_available", "topk"]


def cuda_available() -> bool:
    """True when numba.cuda sees a usable GPU (or the simulator); imports numba.cuda."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba is a hard dependency
        return False
    return bool(cuda.is_available())


def topk(
    users: np.ndarray,
    items: np.ndarray,
    k: int,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items by dot product for each user, never building the U×N score matrix.

    Args:
        users: (U, D) float array of user vectors (used as float32).
        items: (N, D) float32 or float16 item vectors (float16 is widened per tile and
            accumulated in float32; float64 is cast to float32).
        k: number of results per user, > 0. May exceed N; missing slots are padded.
        exclude: optional CSR `(indptr, item_ids)`: user u never gets
            `item_ids[indptr[u]:indptr[u+1]]`. indptr has length U+1; duplicate ids are
            allowed.
        backend: "auto" (CUDA if numba.cuda sees a GPU, else "cpu"), "numpy" (the
            chunked reference), "cpu" (Numba) or "cuda" (Numba CUDA).

    Returns:
        (indices int64[U, k], scores float32[U, k]), each row sorted by descending score,
        ties broken by smaller item index; padding is index -1 with score -inf.

    Raises:
        KernelInputError: bad shapes, dtypes, non-finite values, k, CSR or backend name.
        BackendUnavailableError: backend="cuda" on a machine without a CUDA GPU.
    """
    u, it, k, indptr, ids = check_inputs(users, items, k, exclude, backend)
    if backend == "auto":
        backend = "cuda" if cuda_available() else "cpu"
    if backend == "numpy":
        from .reference import topk_numpy

        return topk_numpy(u, it, k, indptr, ids)
    if backend == "cpu":
        from .cpu import topk_cpu

        return topk_cpu(u, it, k, indptr, ids)
    if not cuda_available():
        raise BackendUnavailableError(
            "backend='cuda' needs a CUDA GPU, but numba.cuda found none; "
            "use backend='cpu' or 'auto'"
        )
    from .cuda import topk_cuda

    return topk_cuda(u, it, k, indptr, ids)
