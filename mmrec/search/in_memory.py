"""Nearest items from a long-lived reader's copy of the items (mmrec.catalog.resident): no
table is read. Candidates come from the copy's own projection onto its principal
directions (int8: one pass over 100k rows at 128 directions costs ~0.8 ms on one core),
measured on the copy before it is used and left out where it would miss neighbours; until
it is ready, or without it, from the sketch where `mmrec index` kept one for this version
(mmrec.search.sketch: its sign codes cost ~1.5 ms per 100k rows, measured when it was
built), else every row is a candidate. Candidates are then scored exactly
from the copy's float32 vectors, so the ranking is the exact one over what was kept.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrec.catalog import CatalogStore, ResidentItems, resident, resident_items
from mmrec.kernels import qscan
from mmrec.search.index import far_sketch

log = logging.getLogger(__name__)
# Without a sketch or a projection, rows scored exactly in memory (about 6-12 ms per 100k
# rows of 448 dims); a larger copy leaves the query to the ANN index.
EXACT_ROWS = 250_000
PROJECTION_ROWS = 20_000  # smaller copies are scanned whole: the projection would save little
SHORTLISTS = (100, 200, 400, 800, 1600, 3200, 6400, 12800)  # rows re-scored exactly, fewest first
TARGET_RECALL = 0.97  # recall@k the projection must reach on both kinds of query, for each k
PROBES = 64  # queries of each kind it is measured on (stored rows, off-item directions)
DIMS = (32, 64, 128, 256)  # principal directions tried, fewest first (the quickest that finds the top k wins)
_BUILDING = threading.Lock()


def resident_rows(store: CatalogStore, query: np.ndarray, limit: int, columns: list[str],
                  exact: bool | None) -> list[dict[str, Any]] | None:
    """The top `limit` items by query · fused as rows of these columns (with `_distance`,
    1 - score, like a LanceDB search), best first; None when the store keeps no current
    copy, or when only the ANN index would be quick enough."""
    near = resident_nearest(store, query, limit, exact)
    if near is None:
        return None
    copy, top, scores = near
    rows = copy.items.rows(top.tolist(), [c for c in columns if c != "_distance"])
    for row, s in zip(rows, scores, strict=True):
        row["_distance"] = 1.0 - float(s)
    return rows


def resident_nearest(store: CatalogStore, query: np.ndarray, limit: int, exact: bool | None = None
                     ) -> tuple[ResidentItems, np.ndarray, np.ndarray] | None:
    """(the copy, positions in it of the top `limit` items by query · fused, best first, their
    scores), or None as for resident_rows: for a caller that takes the copy's arrays as they
    are (a recommendation's candidates), with no row built."""
    copy = resident_items(store)
    if copy is None:
        return None
    q = np.asarray(query, np.float32)
    n = len(copy.items.ids)
    cand = None if exact is True else _projected_candidates(store, copy, q, limit)
    if cand is None and exact is not True:
        cand = _sketch_candidates(store, copy, q, limit, exact)
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
    return copy, cand[top], scores[top]


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


@dataclass(frozen=True)
class Projection:
    """Every row's coordinates on the copy's top principal directions, and how many of the
    best rows by them must be re-scored to find the true top 10 (measured on the copy)."""

    basis: np.ndarray  # (dim, r) float32
    coords: np.ndarray  # (rows, r) int8: (row - mean) @ basis ≈ coords · coord_scale
    coord_scale: np.ndarray  # (r,) float32
    shortlists: tuple[tuple[int, int], ...]  # (k, rows re-scored to find the top k), k ascending
    recall: float  # the lowest measured, over both kinds of query and every k

    def size(self, limit: int) -> int:
        """Rows to re-score for the top `limit`: as measured for the nearest k at or above
        it, else scaled up from the largest k measured."""
        for k, size in self.shortlists:
            if limit <= k:
                return size
        k, size = self.shortlists[-1]
        return -(-size * limit // k)

    def candidates(self, q: np.ndarray, n: int) -> np.ndarray:
        est = qscan.project(self.coords, self.coord_scale, q @ self.basis)  # q · mean: the same for all
        return qscan.shortlist(est, n)


def prepare_resident(store: CatalogStore) -> None:
    """Build and measure the projection of the store's current copy now (a service's start:
    its first requests then need not scan every row while it builds in the background)."""
    copy = resident_items(store)
    if copy is not None and len(copy.items.ids) >= PROJECTION_ROWS and _claim(copy, wait=True):
        _build(store, copy)  # releases _BUILDING


def _projected_candidates(store: CatalogStore, copy: ResidentItems, q: np.ndarray,
                          limit: int) -> np.ndarray | None:
    """The projection's shortlist for q, once it is built and measured (in a background
    thread, started by the first query of a copy); None meanwhile or where it fell short."""
    if len(copy.items.ids) < PROJECTION_ROWS:
        return None
    proj = copy.memo.get("projection")
    if proj is None:
        if _claim(copy, wait=False):
            builder = threading.Thread(target=_build, args=(store, copy), name="mmrec-projection",
                                       daemon=True)
            builder.start()
            atexit.register(builder.join, 60)  # exiting mid-build once hung in the thread pools' teardown
        return None
    size = proj.size(limit) if proj else 0
    if not proj or size * 4 > len(copy.items.ids):
        return None
    return proj.candidates(q, size)


def _claim(copy: ResidentItems, wait: bool) -> bool:
    """Take the one build of this copy's projection (holding _BUILDING: _build releases it)."""
    if "projection" in copy.memo or not _BUILDING.acquire(blocking=wait):
        return False
    if "projection" in copy.memo:  # built or claimed while this thread waited
        _BUILDING.release()
        return False
    copy.memo["projection"] = None  # claimed
    return True


def _build(store: CatalogStore, copy: ResidentItems) -> None:
    try:
        t0 = time.perf_counter()
        copy.memo["projection"] = projection(copy.items.vectors, store.layout) or False
        got = copy.memo["projection"]
        log.info("%s: in-memory projection %s in %.1f s", store.path,
                 f"of {got.basis.shape[1]} dims, shortlists {got.shortlists}, recall {got.recall:.3f}"
                 if got else "not used (it would miss neighbours)", time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - the exact scan serves instead
        copy.memo["projection"] = False
        log.warning("%s: the in-memory projection failed (%s); every row is scored", store.path, e)
    finally:
        _BUILDING.release()


def projection(vectors: np.ndarray, layout: Any, seed: int = 0, ks: tuple[int, ...] = (10, 20, 50, 100)
               ) -> Projection | None:
    """Fit, project and measure (see Projection): for each number of directions in DIMS,
    and each k, the shortest shortlist whose recall@k reaches TARGET_RECALL on stored rows
    (their own row left out) and on off-item queries; of those, the quickest for a top 20
    as timed here. None when no projection finds the top 10 in a quarter of the rows."""
    from mmrec.search.calibration import off_item_queries
    from mmrec.search.sketch import fit_basis

    rng = np.random.default_rng(seed)
    n, dim = vectors.shape
    sample = vectors[np.sort(rng.choice(n, min(PROJECTION_ROWS, n), replace=False))]
    full = fit_basis(sample, variance=1.0, max_dims=max(DIMS))
    centred_mean = sample.mean(axis=0)
    own = rng.choice(n, PROBES, replace=False)
    kinds = [(vectors[own], own), (off_item_queries(layout, PROBES, seed + 1), None)]
    truth = [_exact_top(vectors, qs, skip, max(ks)) for qs, skip in kinds]
    best: tuple[float, Projection] | None = None
    for r in (d for d in DIMS if d <= full.shape[1] and d < dim):
        basis = np.ascontiguousarray(full[:, :r])
        coords, coord_scale = qscan.quantize_columns(np.asarray((vectors - centred_mean) @ basis, np.float32))
        orders = [_estimated_order(coords, (qs @ basis) * coord_scale, skip, min(max(SHORTLISTS), n))
                  for qs, skip in kinds]
        found, worst = [], 1.0
        for k in ks:
            for size in (s for s in SHORTLISTS if s * 4 <= n and s >= k):
                recall = min(_recall(o, t, size, k) for o, t in zip(orders, truth, strict=True))
                if recall >= TARGET_RECALL:
                    found.append((k, size))
                    worst = min(worst, recall)
                    break
            else:
                break
        if not found or found[0][0] != ks[0]:
            continue
        proj = Projection(basis, coords, coord_scale, tuple(found), worst)
        ms = _query_ms(proj, vectors, kinds[1][0])
        if best is not None and ms >= best[0]:
            break  # more directions only cost more from here
        best = (ms, proj)
    return None if best is None else best[1]


def _query_ms(proj: Projection, vectors: np.ndarray, queries: np.ndarray, limit: int = 20) -> float:
    """Median milliseconds of the projection's candidates and their exact scores for a top `limit`."""
    size = proj.size(limit)
    times = []
    for q in queries[:16]:
        t = time.perf_counter()
        vectors[proj.candidates(q, size)] @ q
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def _exact_top(vectors: np.ndarray, queries: np.ndarray, skip: np.ndarray | None, k: int) -> list[np.ndarray]:
    scores = queries @ vectors.T
    if skip is not None:
        scores[np.arange(len(queries)), skip] = -np.inf
    return [np.argsort(-row, kind="stable")[:k] for row in scores]


def _estimated_order(coords: np.ndarray, qc: np.ndarray, skip: np.ndarray | None,
                     depth: int) -> list[np.ndarray]:
    """Per query: the best `depth` rows by the projection (int8 coords, qc scaled), best first."""
    est = np.empty((len(qc), len(coords)), np.float32)
    for lo in range(0, len(coords), 65_536):  # a block of float32 rows at a time
        est[:, lo:lo + 65_536] = qc @ coords[lo:lo + 65_536].astype(np.float32).T
    if skip is not None:
        est[np.arange(len(qc)), skip] = -np.inf
    order = []
    for row in est:
        part = np.argpartition(-row, depth - 1)[:depth]
        order.append(part[np.argsort(-row[part], kind="stable")])
    return order


def _recall(order: list[np.ndarray], exact: list[np.ndarray], size: int, k: int) -> float:
    """Recall@k when the best `size` rows by the projection are re-scored exactly (the true
    top k among them is what re-scoring finds)."""
    return float(np.mean([len(set(o[:size].tolist()) & set(e[:k].tolist())) / k
                          for o, e in zip(order, exact, strict=True)]))
