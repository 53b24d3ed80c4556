"""Nearest items from a long-lived reader's copy of the items (mmrec.catalog.resident): no
table is read. Candidates come from the sketch where `mmrec index` kept one for this
version (mmrec.search.sketch: one compressed pass over every row), else every row is a
candidate; candidates are then scored exactly from the copy's float32 vectors, so the
ranking is the exact one over whatever the candidate stage kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrec.catalog import CatalogStore, ResidentItems, resident, resident_items
from mmrec.search.index import far_sketch

# Without a sketch, rows scored exactly in memory (about 8 ms per 100k rows of 448 dims);
# a larger copy leaves the query to the ANN index.
EXACT_ROWS = 250_000


def resident_rows(store: CatalogStore, query: np.ndarray, limit: int, columns: list[str],
                  exact: bool | None) -> list[dict[str, Any]] | None:
    """The top `limit` items by query · fused as rows of these columns (with `_distance`,
    1 - score, like a LanceDB search), best first; None when the store keeps no current
    copy, or when only the ANN index would be quick enough."""
    copy = resident_items(store)
    if copy is None:
        return None
    q = np.asarray(query, np.float32)
    n = len(copy.items.ids)
    cand = None if exact is True else _sketch_candidates(store, copy, q, limit, exact)
    if cand is None:
        if n > EXACT_ROWS and exact is not True:
            return None
        cand = np.arange(n)
        scores = copy.items.vectors @ q
    else:
        scores = copy.items.vectors[cand] @ q
    take = min(limit, len(cand))
    top = np.argpartition(-scores, take - 1)[:take] if take < len(cand) else np.arange(len(cand))
    top = top[np.lexsort((cand[top], -scores[top]))]  # best first; ties: the earlier row
    rows = copy.items.rows(cand[top].tolist(), [c for c in columns if c != "_distance"])
    for row, s in zip(rows, scores[top], strict=True):
        row["_distance"] = 1.0 - float(s)
    return rows


def _sketch_candidates(store: CatalogStore, copy: ResidentItems, q: np.ndarray, limit: int,
                       exact: bool | None) -> np.ndarray | None:
    """Positions in the copy of the sketch's best rows, or None where search_kind's rules
    say scan every row (a small table) or there is no sketch of this version. The sketch
    and how many rows it shortlists are looked up once per copy and metadata version."""
    key = ("sketch", resident(store).version("meta"), exact)  # type: ignore[union-attr]
    if key not in copy.memo:
        copy.memo[key] = _sketch_route(store, copy, exact)
    route = copy.memo[key]
    if route is None:
        return None
    sketch, rerank, positions = route
    return positions[sketch.shortlist(q, max(rerank, limit))]


def _sketch_route(store: CatalogStore, copy: ResidentItems,
                  exact: bool | None) -> tuple[Any, int, np.ndarray] | None:
    found = far_sketch(store, store.items, exact)
    if found is None or found[0].version != copy.version:
        return None
    sketch, rerank = found
    order = np.argsort(copy.rowids, kind="stable")
    at = np.searchsorted(copy.rowids, sketch.rowids, sorter=order)
    positions = order[np.minimum(at, len(order) - 1)]
    if len(sketch.rowids) != len(copy.rowids) or not np.array_equal(copy.rowids[positions], sketch.rowids):
        return None  # another set of rows: the exact scan serves
    return sketch, rerank, positions
