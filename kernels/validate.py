"""Input checks and CSR helpers shared by every top-k backend."""

from __future__ import annotations

import numpy as np

BACKENDS = ("auto", "numpy", "cpu", "cuda")

# Index stored in an empty top-k slot while a kernel runs; it loses every tie, so a real
# item (even one scoring -inf) always beats an empty slot. Output turns it into -1.
EMPTY = np.iinfo(np.int64).max


class KernelInputError(ValueError):
    """An argument to a kernel has the wrong shape, dtype or value; the message names it."""


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run on this machine (e.g. `cuda` with no GPU)."""


def _float_matrix(name: str, a: object, finite: bool = True) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise KernelInputError(f"{name} must be a 2-D array (rows, dim); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise KernelInputError(f"{name} must be float16/float32/float64; got dtype {arr.dtype}")
    if finite:
        check_finite(name, arr)
    return arr


def check_finite(name: str, arr: np.ndarray) -> None:
    """Raise KernelInputError if arr holds NaN or inf (one pass, no N×D temporary)."""
    # min/max propagate NaN and expose inf without an N×D boolean temporary.
    if arr.size and not (np.isfinite(arr.min()) and np.isfinite(arr.max())):
        raise non_finite(name)


def non_finite(name: str, row: int | None = None) -> KernelInputError:
    """The error for NaN/inf input, naming the row when it is known."""
    where = f" (row {row})" if row is not None else ""
    return KernelInputError(f"{name} contains NaN or inf{where}; scores would have no order")


def check_inputs(
    users: object,
    items: object,
    k: object,
    exclude: tuple[object, object] | None,
    backend: object,
    items_finite: bool = True,
) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Validate and normalise `topk` arguments.

    Returns users as C-contiguous float32, items as C-contiguous float32 or float16 (float64
    items are cast to float32), k, and the exclusion CSR as int64 (indptr, item_ids); no
    exclusions give an all-zero indptr. items_finite=False leaves the NaN/inf scan of the
    items to the caller (the Numba CPU kernel does it per tile, while the tile is in cache).
    """
    if backend not in BACKENDS:
        raise KernelInputError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    u = _float_matrix("users", users)
    it = _float_matrix("items", items, finite=items_finite)
    if u.shape[1] != it.shape[1]:
        raise KernelInputError(
            f"users and items must share the vector dimension; got users {u.shape} "
            f"and items {it.shape}"
        )
    if u.shape[1] == 0:
        raise KernelInputError("vector dimension must be at least 1; got 0")
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise KernelInputError(f"k must be a positive int; got {k!r}")
    if k <= 0:
        raise KernelInputError(f"k must be a positive int; got {k}")
    u = np.ascontiguousarray(u, dtype=np.float32)
    it = np.ascontiguousarray(it, dtype=np.float16 if it.dtype == np.float16 else np.float32)
    indptr, ids = check_csr(exclude, u.shape[0], it.shape[0])
    return u, it, int(k), indptr, ids


def check_for_device_items(
    users: object, n_items: int, dim: int, k: object, exclude: tuple[object, object] | None
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """`check_inputs` for items already on a GPU, known only by their shape (n_items, dim):
    users as float32, k, and the exclusion CSR; the items themselves are trusted."""
    u, _, k, _, _ = check_inputs(users, np.zeros((0, dim), np.float32), k, None, "auto")
    indptr, ids = check_csr(exclude, u.shape[0], n_items)
    return u, k, indptr, ids


def check_csr(
    exclude: tuple[object, object] | None, n_users: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check an exclusion CSR `(indptr, item_ids)` against U users and N items."""
    if exclude is None:
        return np.zeros(n_users + 1, np.int64), np.zeros(0, np.int64)
    if not isinstance(exclude, tuple | list) or len(exclude) != 2:
        raise KernelInputError("exclude must be a pair of arrays (indptr, item_ids)")
    indptr, ids = (np.asarray(a) for a in exclude)
    for name, a in (("indptr", indptr), ("item_ids", ids)):
        if a.ndim != 1 or not (np.issubdtype(a.dtype, np.integer) or a.size == 0):
            raise KernelInputError(
                f"exclude {name} must be a 1-D integer array; got {a.dtype} shape {a.shape}"
            )
    if indptr.shape[0] != n_users + 1:
        raise KernelInputError(
            f"exclude indptr must have length U+1 = {n_users + 1}; got {indptr.shape[0]}"
        )
    indptr = indptr.astype(np.int64)
    ids = ids.astype(np.int64)
    if indptr[0] != 0 or indptr[-1] != ids.shape[0]:
        raise KernelInputError(
            f"exclude indptr must start at 0 and end at len(item_ids) = {ids.shape[0]}; "
            f"got {indptr[0]}..{indptr[-1]}"
        )
    if np.any(np.diff(indptr) < 0):
        raise KernelInputError("exclude indptr must be non-decreasing")
    if ids.size and (ids.min() < 0 or ids.max() >= n_items):
        raise KernelInputError(
            f"exclude item_ids must lie in [0, {n_items}); got range "
            f"[{ids.min()}, {ids.max()}]"
        )
    return indptr, ids


def sort_rows(indptr: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Item ids sorted within each CSR row (duplicates kept), for one forward sweep per user."""
    rows = np.repeat(np.arange(indptr.shape[0] - 1), np.diff(indptr))
    return ids[np.lexsort((ids, rows))]


def empty_result(n_users: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """All-padding result: index -1, score -inf."""
    return np.full((n_users, k), -1, np.int64), np.full((n_users, k), -np.inf, np.float32)
