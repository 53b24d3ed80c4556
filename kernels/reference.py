"""NumPy reference top-k: chunked over users and items, a running top-k, no U×N matrix.

Ordering everywhere: score descending, then item index ascending. Excluded items are
marked NaN inside a chunk and never selected.
"""

from __future__ import annotations

import numpy as np

from .validate import empty_result

# Elements of one score chunk (users × items); temporaries are a few times this.
CHUNK_ELEMS = 1 << 18


def _keep_best(cs: np.ndarray, ci: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the k best columns per row, preserving column order (= ascending item index).

    NaN means "no candidate" and ranks last. Ties at the k-th score are broken by
    position, which is item-index order because columns are laid out by ascending index.
    """
    if cs.shape[1] <= k:
        return cs, ci
    neg = -cs
    t = np.partition(neg, k - 1, axis=1)[:, k - 1 : k]  # NaN sorts last
    t_nan = np.isnan(t)
    neg_nan = np.isnan(neg)
    strict = (neg < t) | (t_nan & ~neg_nan)
    eq = (neg == t) | (t_nan & neg_nan)
    need = k - strict.sum(axis=1, keepdims=True)
    take = strict | (eq & (np.cumsum(eq, axis=1) <= need))
    return cs[take].reshape(-1, k), ci[take].reshape(-1, k)


def topk_numpy(
    users: np.ndarray, items: np.ndarray, k: int, indptr: np.ndarray, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Reference top-k over validated inputs (see `mmrec.kernels.topk`)."""
    n_users, n_items = users.shape[0], items.shape[0]
    out_i, out_s = empty_result(n_users, k)
    if n_users == 0 or n_items == 0:
        return out_i, out_s
    ub = min(n_users, 256)
    chunk = max(256, CHUNK_ELEMS // ub)
    # Exclusion pairs sorted by item id, so each item chunk takes one contiguous slice.
    rows = np.repeat(np.arange(n_users), np.diff(indptr))
    order = np.argsort(ids, kind="stable")
    ex_ids, ex_rows = ids[order], rows[order]
    for u0 in range(0, n_users, ub):
        u1 = min(n_users, u0 + ub)
        blk = users[u0:u1]
        best_s = np.empty((u1 - u0, 0), np.float32)
        best_i = np.empty((u1 - u0, 0), np.int64)
        for s in range(0, n_items, chunk):
            e = min(n_items, s + chunk)
            sc = blk @ items[s:e].astype(np.float32, copy=False).T
            a, b = np.searchsorted(ex_ids, [s, e])
            r, c = ex_rows[a:b], ex_ids[a:b]
            mine = (r >= u0) & (r < u1)
            sc[r[mine] - u0, c[mine] - s] = np.nan
            cols = np.broadcast_to(np.arange(s, e, dtype=np.int64), sc.shape)
            best_s, best_i = _keep_best(
                np.concatenate([best_s, sc], axis=1), np.concatenate([best_i, cols], axis=1), k
            )
        pad = np.isnan(best_s)
        order_k = np.lexsort((best_i, -np.where(pad, 0, best_s), pad), axis=-1)
        best_s = np.take_along_axis(best_s, order_k, axis=1)
        best_i = np.take_along_axis(best_i, order_k, axis=1)
        pad = np.isnan(best_s)
        w = best_s.shape[1]
        out_s[u0:u1, :w] = np.where(pad, -np.inf, best_s)
        out_i[u0:u1, :w] = np.where(pad, -1, best_i)
    return out_i, out_s
