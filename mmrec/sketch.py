"""A projected exact scan for queries far from every item (text, outside files, users).

An HNSW graph finds a stored vector's neighbours with a narrow search, but a query in no
item's neighbourhood makes it wander: at 1M items it can need ef 3,000 (~65 ms on two
cores). Learned embeddings have a low intrinsic dimension: a few principal directions
carry most of their variance. A sketch keeps every row's coordinates on those directions
in memory (1M rows x 32 dims: 128 MB), scores all of them for a query (~8 ms), and
re-scores the best few hundred with their full vectors, read by row id. `mmrec index`
measures it against the graph on the same off-item queries and keeps whichever is better
(mmrec.calibration). A sketch serves only the table version it was built from; after any
write, search falls back to the graph until `mmrec index` runs again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.store import vector_matrix

FIT_SAMPLE = 20_000  # rows the principal directions are fitted on
VARIANCE = 0.90  # share of the sample's variance the kept directions must explain...
MAX_DIMS = 64  # ...but never more than this many (the scan reads rows x dims floats)
DIM_STEP = 16  # dims are rounded up to a multiple of this (whole SIMD lanes)
RERANK_LADDER = (250, 500, 1000, 2000)  # candidates re-scored with full vectors, fewest first
SCAN_BATCH = 32_768  # rows per streamed batch while projecting


@dataclass(frozen=True)
class Sketch:
    """Every row of one vector column projected on the column's top principal directions."""

    basis: np.ndarray  # (dim, r) float32, orthonormal columns
    coords: np.ndarray  # (rows, r) float32: each row's coordinates on basis
    rowids: np.ndarray  # (rows,) int64: the table's row ids, in coords order
    version: int  # the table version it describes

    @property
    def dims(self) -> int:
        return int(self.basis.shape[1])

    def candidates(self, query: np.ndarray, n: int) -> np.ndarray:
        """Row ids of the n rows whose projection scores highest against query (unordered).
        The column mean's share of the score is the same for every row, so it is left out."""
        if n >= len(self.rowids):
            return self.rowids
        scores = self.coords @ (query.astype(np.float32) @ self.basis)
        return self.rowids[np.argpartition(-scores, n - 1)[:n]]


def fit_basis(sample: np.ndarray, variance: float = VARIANCE, max_dims: int = MAX_DIMS) -> np.ndarray:
    """The fewest top principal directions of sample (rounded up to DIM_STEP, at most
    max_dims) that explain `variance` of it, as (dim, r) columns."""
    centred = sample - sample.mean(axis=0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    share = np.cumsum(sv ** 2) / max(float(np.sum(sv ** 2)), np.finfo(np.float32).tiny)
    r = int(np.searchsorted(share, variance)) + 1
    r = min(max_dims, -(-r // DIM_STEP) * DIM_STEP, len(sv))
    return np.ascontiguousarray(vt[:r].T, np.float32)


def build_sketch(table: Any, column: str, seed: int = 0) -> Sketch:
    """Fit the basis on a sample of the column, then project every row in one streaming
    pass (one Arrow batch in memory at a time)."""
    version = table.version  # read first: a write during the pass makes the sketch stale, not wrong
    n = table.count_rows()
    dim = table.schema.field(column).type.list_size
    offsets = np.random.default_rng(seed).choice(n, min(FIT_SAMPLE, n), replace=False)
    sample = table.take_offsets(sorted(int(o) for o in offsets)).select([column]).to_arrow()
    basis = fit_basis(vector_matrix(sample.column(column), dim))
    coords, rowids = [], []
    for batch in table.search().select([column]).with_row_id(True).limit(None).to_batches(SCAN_BATCH):
        if batch.num_rows:
            coords.append(vector_matrix(batch.column(column), dim) @ basis)
            rowids.append(batch.column("_rowid").to_numpy().astype(np.int64))
    return Sketch(basis, np.ascontiguousarray(np.concatenate(coords)), np.concatenate(rowids), version)


def search_rows(table: Any, column: str, sketch: Sketch, query: np.ndarray, limit: int, rerank: int,
                columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The top `limit` rows by query · column, best first: the sketch's best `rerank`
    candidates re-scored with their full vectors. Rows carry LanceDB's dot `_distance`
    (1 - score) like an index search, `_rowid`, the vector and `columns` (None: all).

    Only the vectors are read for every candidate; the other columns (strings cost ~3x
    as much to read by row id) only for the rows returned."""
    ids = sketch.candidates(query, max(rerank, limit))
    cands = table.take_row_ids(np.sort(ids).tolist()).select([column]).with_row_id().to_arrow()
    scores = vector_matrix(cands.column(column), sketch.basis.shape[0]) @ query.astype(np.float32)
    order = np.argsort(-scores, kind="stable")[:limit]
    best = cands.take(pa.array(order, pa.int64())).to_pylist()
    for row, s in zip(best, scores[order], strict=True):
        row["_distance"] = 1.0 - float(s)
    rest = [c for c in (columns or table.schema.names) if c not in (column, "_distance", "_rowid")]
    if rest and best:
        rowids = [r["_rowid"] for r in best]
        extra = table.take_row_ids(sorted(rowids)).select(rest).with_row_id().to_arrow().to_pylist()
        by_id = {r["_rowid"]: r for r in extra}
        best = [{**by_id[r["_rowid"]], **r} for r in best]
    return best


# -- kept in the catalog, as two LanceDB tables beside the one they sketch ----------------

def _names(table_name: str) -> tuple[str, str]:
    return f"{table_name}_sketch", f"{table_name}_sketch_basis"


def save(db: Any, table_name: str, sketch: Sketch) -> None:
    coords_name, basis_name = _names(table_name)
    r, dim = sketch.dims, sketch.basis.shape[0]
    db.create_table(coords_name, pa.table({
        "row": pa.array(sketch.rowids, pa.int64()),
        "coords": pa.FixedSizeListArray.from_arrays(pa.array(sketch.coords.ravel(), pa.float32()), r),
    }), mode="overwrite")
    db.create_table(basis_name, pa.table({
        "direction": pa.FixedSizeListArray.from_arrays(pa.array(sketch.basis.T.ravel(), pa.float32()), dim),
    }), mode="overwrite")
    _LOADED.pop((_db_key(db), table_name), None)


def drop(db: Any, table_name: str) -> None:
    """Remove a table's sketch, if it has one (calibration chose the graph)."""
    existing = set(db.list_tables().tables)
    for name in _names(table_name):
        if name in existing:
            db.drop_table(name)
    _LOADED.pop((_db_key(db), table_name), None)


_LOADED: dict[tuple[str, str], Sketch] = {}  # (catalog, table) -> sketch read from it
_LOCK = threading.Lock()


def load(db: Any, table_name: str, version: int) -> Sketch | None:
    """The saved sketch of table_name built from `version`, read once per process; None
    if there is none."""
    key = (_db_key(db), table_name)
    with _LOCK:
        cached = _LOADED.get(key)
        if cached is not None and cached.version == version:
            return cached
        coords_name, basis_name = _names(table_name)
        if coords_name not in set(db.list_tables().tables):
            return None
        rows = db.open_table(coords_name).to_arrow()
        directions = db.open_table(basis_name).to_arrow().column("direction")
        dim = directions.type.list_size
        basis = np.ascontiguousarray(vector_matrix(directions, dim).T)
        sketch = Sketch(basis, vector_matrix(rows.column("coords"), basis.shape[1]),
                        rows.column("row").to_numpy().astype(np.int64), version)
        _LOADED[key] = sketch
        return sketch


def _db_key(db: Any) -> str:
    return str(getattr(db, "uri", id(db)))
