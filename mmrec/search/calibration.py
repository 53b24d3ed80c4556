"""How wide an ANN search must be on this catalog's data, measured when the index is built.

The breadth an HNSW graph needs for recall@10 >= 0.95 depends on the data far more than on
its size: on vectors with a low intrinsic dimension (learned embeddings) a narrow search
finds the true neighbours, on near-isotropic ones it must visit thousands of nodes. So
`mmrec index` measures it for two kinds of query: stored vectors (a search by item) and
off-item directions (the worst case of a text query, which can need ten times the
breadth). Their exact top k come from one streaming pass through the scoring kernels, and
the breadth steps up the index kind's ladder until the index finds TARGET_RECALL of them.
Off-item queries may instead take a compressed scan of every row (mmrec.search.sketch): given
one, the same queries walk its re-scoring ladder, and the route with the better recall
(the faster, when both reach the target) serves them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrec.catalog import vector_matrix

log = logging.getLogger(__name__)

TARGET_RECALL = 0.97  # on the sample: the promise is 0.95 on queries not seen here
SAMPLE = 100  # queries; recall's standard error at 0.97 is then ~0.007
SCAN_BATCH = 32_768  # rows per streamed batch of the exact pass (~185 MB at 1,408 dims)


@dataclass(frozen=True)
class Breadth:
    """The breadth chosen for one kind of query and what it measured."""

    value: int  # the index kind's search knob (ef for HNSW, nprobes for IVF; sketch: re-ranked rows)
    recall: float  # recall@k at that breadth on the sample
    tried: dict[int, float]  # breadth -> recall, in the order tried
    ms: float  # median milliseconds per query at that breadth


@dataclass(frozen=True)
class Calibration:
    """Search breadths for one indexed column: `near` for queries that are stored vectors
    (search by item), `far` for every other query (text, outside files, user vectors)."""

    near: Breadth
    far: Breadth
    queries: int  # of each kind
    seconds: float
    sketch: Breadth | None = None  # the sketch's scan on the off-item queries, if offered one

    @property
    def far_route(self) -> str:
        """"sketch" when the sketch's scan serves off-item queries better than the graph:
        higher recall where either misses the target, else faster."""
        if self.sketch is None:
            return "graph"
        def merit(b: Breadth) -> tuple[float, float]:
            return (min(b.recall, TARGET_RECALL), -b.ms)
        return "sketch" if merit(self.sketch) > merit(self.far) else "graph"


def off_item_queries(layout: Any, n: int, seed: int = 0) -> np.ndarray:
    """n queries in no item's neighbourhood: a random unit direction per modality block,
    weighted equally (what a text query is when its towers and the items disagree: the
    hardest case for a graph index; trained cross-modal towers land nearer their items)."""
    rng = np.random.default_rng(seed)
    return np.stack([layout.query({b.modality: rng.standard_normal(b.dim) for b in layout.blocks},
                                  {m: 1.0 for m in layout.modalities}) for _ in range(n)])


def exact_neighbours(table: Any, column: str, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids (Q, k) of each query's top k rows by dot product, best first, from one
    streaming pass over the column (memory: one batch, never the whole column)."""
    from mmrec.kernels import topk

    dim = _dim(table, column)
    best_ids = np.full((len(queries), 0), -1, np.int64)
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    scan = table.search().select([column]).with_row_id(True).limit(None).to_batches(SCAN_BATCH)
    for batch in scan:
        if batch.num_rows == 0:
            continue
        vectors = vector_matrix(batch.column(column), dim)
        idx, scores = topk(queries, vectors, k)
        rowids = batch.column("_rowid").to_numpy().astype(np.int64)
        ids = np.where(idx >= 0, rowids[np.maximum(idx, 0)], -1)
        best_ids = np.concatenate([best_ids, ids], axis=1)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(best_ids, order, axis=1)
        best_scores = np.take_along_axis(best_scores, order, axis=1)
    return best_ids


def _dim(table: Any, column: str) -> int:
    return table.schema.field(column).type.list_size


def _index_neighbours(table: Any, column: str, query: np.ndarray, kind: Any, k: int) -> set[int]:
    q = (table.search(query, vector_column_name=column).distance_type("dot")
         .select(["_distance"]).with_row_id(True).limit(k))
    return set(kind.configure(q, k).to_arrow().column("_rowid").to_pylist())


def calibrate(table: Any, column: str, kind: Any, layout: Any, k: int = 10, sample: int = SAMPLE,
              target: float = TARGET_RECALL, seed: int = 0, sketch: Any = None) -> Calibration:
    """For stored vectors as queries (their own row left out) and for off-item queries: the
    narrowest breadth on kind.ladder whose recall@k reaches target, or the widest (logged);
    with a sketch, also the fewest re-scored rows that reach it on the off-item queries."""
    t0 = time.perf_counter()
    n = table.count_rows()
    offsets = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    picked = table.take_offsets(sorted(int(o) for o in offsets)).select([column]).with_row_id().to_arrow()
    near = vector_matrix(picked.column(column), _dim(table, column))
    own = picked.column("_rowid").to_numpy().astype(np.int64)
    far = off_item_queries(layout, len(near), seed)
    # one exact pass for both; k + 1: a stored vector's own row is (almost always) its
    # nearest and is not counted
    exact = exact_neighbours(table, column, np.concatenate([near, far]), k + 1)
    near_truth = [{r for r in row.tolist() if r not in (o, -1)} if o in row else set(row[:k].tolist()) - {-1}
                  for row, o in zip(exact[:len(near)], own, strict=True)]
    far_truth = [set(row[:k].tolist()) - {-1} for row in exact[len(near):]]
    no_own = np.full(len(far), -1)
    def graph(breadth: int) -> Callable[[np.ndarray], set[int]]:
        tuned = kind.with_breadth(breadth)
        return lambda q: _index_neighbours(table, column, q, tuned, k + 1)

    def sketched(rerank: int) -> Callable[[np.ndarray], set[int]]:
        from mmrec.search.sketch import search_rows

        return lambda q: {r["_rowid"] for r in search_rows(table, column, sketch, q, k, rerank, ["_rowid"])}

    name = f"{table.name}.{column}"
    near_b = _walk(graph, near, own, near_truth, k, target, kind.ladder,
                   f"{name}, stored vectors, {kind.knob}")
    # an off-item query never needs less than a stored vector's breadth
    ladder = tuple(b for b in kind.ladder if b >= near_b.value)
    far_b = _walk(graph, far, no_own, far_truth, k, target, ladder, f"{name}, off-item queries, {kind.knob}")
    sketch_b = None
    if sketch is not None:
        from mmrec.search.sketch import RERANK_LADDER

        sketch_b = _walk(sketched, far, no_own, far_truth, k, target, RERANK_LADDER,
                         f"{name}, off-item queries, sketch re-scoring")
    return Calibration(near_b, far_b, len(near), time.perf_counter() - t0, sketch_b)


def _walk(search: Callable[[int], Callable[[np.ndarray], set[int]]], queries: np.ndarray, own: np.ndarray,
          truth: list[set[int]], k: int, target: float, ladder: tuple[int, ...], what: str) -> Breadth:
    """Step up the ladder until search(breadth)'s recall@k on queries reaches target."""
    tried: dict[int, float] = {}
    for breadth in ladder:
        run = search(breadth)
        hits, ms = [], []
        for q, o, t in zip(queries, own, truth, strict=True):
            t0 = time.perf_counter()
            found = run(q)
            ms.append((time.perf_counter() - t0) * 1e3)
            hits.append(len((found - {o}) & t) / max(len(t), 1))
        tried[breadth] = float(np.mean(hits))
        log.info("%s %d -> recall@%d %.3f, %.1f ms", what, breadth, k, tried[breadth], float(np.median(ms)))
        if tried[breadth] >= target:
            break
    else:
        log.warning("%s: recall@%d %.3f at the widest search (%d), under %.2f", what, k, tried[breadth],
                    breadth, target)
    return Breadth(breadth, tried[breadth], tried, float(np.median(ms)))
