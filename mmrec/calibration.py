"""How wide an ANN search must be on this catalog's data, measured when the index is built.

The breadth an HNSW graph needs for recall@10 >= 0.95 depends on the data far more than on
its size: on vectors with a low intrinsic dimension (learned embeddings) a narrow search
finds the true neighbours, on near-isotropic ones it must visit thousands of nodes. So
`mmrec index` measures it: stored vectors serve as queries (a search by item), their exact
top k come from one streaming pass through the scoring kernels, and the breadth steps up
the index kind's ladder until the index finds TARGET_RECALL of them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

TARGET_RECALL = 0.97  # on the sample: the promise is 0.95 on queries not seen here
SAMPLE = 100  # queries; recall's standard error at 0.97 is then ~0.007
SCAN_BATCH = 32_768  # rows per streamed batch of the exact pass (~185 MB at 1,408 dims)


@dataclass(frozen=True)
class Calibration:
    """The breadth chosen for one indexed column and what it measured."""

    breadth: int  # the index kind's search knob (ef for HNSW, nprobes for IVF)
    recall: float  # recall@k at that breadth on the sample
    queries: int
    tried: dict[int, float]  # breadth -> recall, in the order tried
    seconds: float


def exact_neighbours(table: Any, column: str, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids (Q, k) of each query's top k rows by dot product, best first, from one
    streaming pass over the column (memory: one batch, never the whole column)."""
    from mmrec.kernels import topk
    from mmrec.store import vector_matrix

    best_ids = np.full((len(queries), 0), -1, np.int64)
    best_scores = np.full((len(queries), 0), -np.inf, np.float32)
    scan = table.search().select([column]).with_row_id(True).limit(None).to_batches(SCAN_BATCH)
    for batch in scan:
        if batch.num_rows == 0:
            continue
        vectors = vector_matrix(batch.column(column), _dim(table, column))
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


def calibrate(table: Any, column: str, kind: Any, k: int = 10, sample: int = SAMPLE,
              target: float = TARGET_RECALL, seed: int = 0) -> Calibration:
    """The narrowest breadth on kind.ladder whose recall@k (search by stored vector, the
    vector's own row left out) reaches target; the widest one if none does (logged)."""
    from mmrec.store import vector_matrix

    t0 = time.perf_counter()
    n = table.count_rows()
    offsets = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    picked = table.take_offsets(sorted(int(o) for o in offsets)).select([column]).with_row_id().to_arrow()
    queries = vector_matrix(picked.column(column), _dim(table, column))
    own = picked.column("_rowid").to_numpy().astype(np.int64)
    # k + 1: the query's own row is (almost always) its nearest and is not counted
    truth = [{r for r in row.tolist() if r not in (o, -1)}
             if o in row else set(row[:k].tolist()) - {-1}
             for row, o in zip(exact_neighbours(table, column, queries, k + 1), own, strict=True)]
    tried: dict[int, float] = {}
    for breadth in kind.ladder:
        tuned = kind.with_breadth(breadth)
        hits = [len((_index_neighbours(table, column, q, tuned, k + 1) - {o}) & t) / max(len(t), 1)
                for q, o, t in zip(queries, own, truth, strict=True)]
        tried[breadth] = float(np.mean(hits))
        log.info("%s.%s: %s %d -> recall@%d %.3f", table.name, column, kind.knob, breadth, k, tried[breadth])
        if tried[breadth] >= target:
            break
    else:
        log.warning("%s.%s: recall@%d %.3f at the widest search (%s %d), under %.2f",
                    table.name, column, k, tried[breadth], kind.knob, breadth, target)
    return Calibration(breadth, tried[breadth], len(queries), tried, time.perf_counter() - t0)
