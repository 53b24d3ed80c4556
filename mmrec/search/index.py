"""ANN indexes on the fused item vectors and the segment vectors (`mmrec index`).

Below EXACT_SEARCH_BELOW rows a flat scan is exact and fast enough, so search ignores
any index there. Above it, search uses the index with the query-time settings of its
kind (INDEX_KINDS) and the search breadth measured on this catalog when the index was
built (mmrec.search.calibration), so that recall@10 against exact search stays >= 0.95.
Rows added after the index was built are still found (LanceDB scans them flat);
`mmrec index` again folds them in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from mmrec.catalog import CatalogStore
from mmrec.errors import ConfigError

log = logging.getLogger(__name__)

EXACT_SEARCH_BELOW = 20_000  # rows; below this, search is a flat (exact) scan (~0.1 s at 1,408 dims)
MIN_INDEX_ROWS = 256  # fewer rows than this cannot train the quantisers


@dataclass(frozen=True)
class IndexKind:
    """How one ANN index type is built and queried."""

    name: str
    lance_type: str
    build: Callable[[int, int], Any]  # (dim, rows) -> lancedb index config
    nprobes: int
    refine_factor: int
    knob: str  # the search-breadth field calibration tunes
    ladder: tuple[int, ...]  # its values to try, narrowest first
    ef: int | None = None  # HNSW search breadth (at least; see search_ef)

    def with_breadth(self, value: int) -> IndexKind:
        return replace(self, **{self.knob: value})

    def configure(self, query: Any, limit: int) -> Any:
        """A LanceDB vector query set up for this kind; the index returns limit ×
        refine_factor rows for re-ranking, and an HNSW search needs ef >= that."""
        query = query.nprobes(self.nprobes).refine_factor(self.refine_factor)
        return query.ef(max(self.ef, limit * (self.refine_factor or 1))) if self.ef else query


def _pq_sub_vectors(dim: int) -> int:
    """The largest divisor of dim that gives sub-vectors of at least 8 dimensions."""
    return next(s for s in range(max(1, dim // 8), 0, -1) if dim % s == 0)


def _hnsw(dim: int, rows: int) -> Any:
    from lancedb.index import HnswSq

    return HnswSq(distance_type="dot")


def _ivf_pq(dim: int, rows: int) -> Any:
    from lancedb.index import IvfPq

    return IvfPq(distance_type="dot", num_sub_vectors=_pq_sub_vectors(dim))


INDEX_KINDS: dict[str, IndexKind] = {
    "hnsw": IndexKind("hnsw", "IVF_HNSW_SQ", _hnsw, nprobes=32, refine_factor=5, knob="ef",
                      ladder=(200, 300, 500, 800, 1200, 1600, 2000, 2500, 3000, 4000), ef=200),
    "ivf-pq": IndexKind("ivf-pq", "IVF_PQ", _ivf_pq, nprobes=32, refine_factor=20, knob="nprobes",
                        ladder=(32, 48, 64, 96, 128, 192, 256)),
}
DEFAULT_KIND = "hnsw"


@dataclass(frozen=True)
class IndexReport:
    """What `build_indexes` did to one table."""

    table: str
    column: str
    rows: int
    kind: str | None  # None: too few rows, exact search stays in use
    seconds: float  # build and calibration
    breadth: int | None = None  # calibrated search breadth (the kind's knob) for stored-vector queries
    recall: float | None = None  # recall@10 it measured
    far_breadth: int | None = None  # ... for every other query (text, outside files, users)
    far_recall: float | None = None
    far_ms: float | None = None  # median ms per off-item query on the graph at far_breadth
    far_route: str = "graph"  # what serves those queries: the graph, or the sketch (mmrec.search.sketch)
    sketch_dims: int | None = None  # the sketch measured, whichever route won
    sketch_rerank: int | None = None
    sketch_recall: float | None = None
    sketch_ms: float | None = None
    sketch_version: int | None = None  # the table version a kept sketch describes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def search_ef(kind: IndexKind, rows: int) -> int | None:
    """HNSW search breadth for an index built before calibration existed, by table size,
    sized for the hardest data: measured at 1M x 1,408 dims on near-isotropic clusters
    (`mmrec bench query`, 60 queries against exact): ef 200 -> recall@10 0.48; 1,428 ->
    0.953; 2,000 -> 0.998. At 100k, ef 200 -> 0.995."""
    if kind.ef is None:
        return None
    return max(kind.ef, min(4_000, rows // 500))


def index_kind(name: str) -> IndexKind:
    try:
        return INDEX_KINDS[name]
    except KeyError:
        raise ConfigError(f"unknown index type {name!r}: choose one of {', '.join(INDEX_KINDS)}") from None


def build_indexes(store: CatalogStore, kind: str = DEFAULT_KIND) -> list[IndexReport]:
    """Build (or rebuild) the ANN index on items.fused and segments.vector, plus scalar
    indexes on the id columns that filters and joins use, then calibrate each ANN index."""
    from lancedb.index import BTree

    spec = index_kind(kind)
    built: list[tuple[Any, str, float] | IndexReport] = []  # per vector column, in order
    for table, column in _vector_columns(store):
        t0 = time.perf_counter()
        rows = table.count_rows()
        if rows < MIN_INDEX_ROWS:
            log.info("%s: %d rows, too few for an ANN index (needs %d)", table.name, rows, MIN_INDEX_ROWS)
            built.append(IndexReport(table.name, column, rows, None, time.perf_counter() - t0))
            _drop_sketch(store, table)
            continue
        table.create_index(column, config=spec.build(store.layout.dim, rows), replace=True)
        built.append((table, column, time.perf_counter() - t0))
    scalar = [(store.items, "id"), (store.items, "path"), (store.segments, "item_id")]
    interactions = store.interactions_table()
    if interactions is not None:  # a user's rows, and everyone's on the candidates (recommend)
        scalar += [(interactions, "user_id"), (interactions, "item_id")]
    for table, column in scalar:
        if table.count_rows():
            table.create_index(column, config=BTree(), replace=True)
    # last: the sketches describe the tables' final versions
    reports = []
    for b in built:
        if not isinstance(b, IndexReport):
            table, column, took = b  # its build time counts into the report's seconds
            b = _calibrated(store, table, column, spec, time.perf_counter() - took)
        reports.append(b)
    store.set_meta({"index": {"kind": spec.name, "built_at": time.time(),
                              "tables": [r.to_json() for r in reports]}})
    return reports


def calibrate_indexes(store: CatalogStore) -> list[IndexReport]:
    """Measure the search breadth of the existing ANN indexes again, without rebuilding
    them: for an index built before calibration existed, or after ingests changed the data."""
    built = store.meta().get("index") or {}
    indexed = [(t, c) for t, c in _vector_columns(store) if _has_vector_index(t, c)]
    if not indexed:
        raise ConfigError(f"{store.path}: no ANN index to calibrate: run `mmrec index` first")
    spec = index_kind(built.get("kind", DEFAULT_KIND))
    reports = [_calibrated(store, table, column, spec, time.perf_counter()) for table, column in indexed]
    store.set_meta({"index": {**built, "kind": spec.name, "tables": [r.to_json() for r in reports]}})
    return reports


def _vector_columns(store: CatalogStore) -> tuple[tuple[Any, str], ...]:
    return ((store.items, "fused"), (store.segments, "vector"))


def _has_vector_index(table: Any, column: str) -> bool:
    return any(ix.columns and ix.columns[0] == column for ix in table.list_indices())


def _calibrated(store: CatalogStore, table: Any, column: str, spec: IndexKind, t0: float) -> IndexReport:
    """Measure the breadths of table's index and its sketch; keep the sketch only if it won."""
    from mmrec.search import sketch as sketches
    from mmrec.search.calibration import calibrate

    sketch = sketches.build_sketch(table, column, store.path)
    try:
        cal = calibrate(table, column, spec, store.layout, sketch=sketch)
    except BaseException:
        sketches.discard(sketch)
        raise
    route = cal.far_route
    if route == "sketch":
        sketches.save(store.path, table.name, sketch)
    else:
        sketches.discard(sketch)
        _drop_sketch(store, table)
    s = cal.sketch
    return IndexReport(table.name, column, table.count_rows(), spec.name, time.perf_counter() - t0,
                       breadth=cal.near.value, recall=cal.near.recall, far_breadth=cal.far.value,
                       far_recall=cal.far.recall, far_ms=cal.far.ms, far_route=route, sketch_dims=sketch.dims,
                       sketch_rerank=s.value if s else None, sketch_recall=s.recall if s else None,
                       sketch_ms=s.ms if s else None,
                       sketch_version=sketch.version if route == "sketch" else None)


def _drop_sketch(store: CatalogStore, table: Any) -> None:
    from mmrec.search import sketch as sketches

    sketches.drop(store.path, store.db, table.name)


def _sketch_saved(store: CatalogStore, table: Any) -> bool:
    from mmrec.search import sketch as sketches

    return sketches.exists(store.path, table.name)


def vector_index_status(store: CatalogStore) -> dict[str, Any]:
    """Per table: the ANN index type, how many rows it does not cover yet, and what serves
    queries from outside the catalog (graph, sketch, or a sketch gone stale by writes)."""
    out: dict[str, Any] = {}
    for table in (store.items, store.segments):
        for ix in table.list_indices():
            st = table.index_stats(ix.name)
            if st is not None and st.distance_type is not None:
                entry = index_entry(store, table)
                route = entry.get("far_route", "graph")
                if route == "sketch" and entry.get("sketch_version") != table.version:
                    route = "graph (sketch stale: run `mmrec index`)"
                elif route == "sketch" and not _sketch_saved(store, table):
                    route = "graph (sketch missing: run `mmrec index`)"
                out[table.name] = {"type": st.index_type, "indexed": st.num_indexed_rows,
                                   "unindexed": st.num_unindexed_rows, "far_route": route}
    return out


def search_kind(store: CatalogStore, table: Any, exact: bool | None, near: bool = False) -> IndexKind | None:
    """The index kind a query should use, with the breadth calibrated for its kind of query
    (near: a stored vector, as in search by item), or None for an exact scan.

    exact=None decides by size: exact below EXACT_SEARCH_BELOW rows or without an index.
    """
    if exact is True:
        return None
    if not any(_has_vector_index(table, c) for c in ("fused", "vector")):
        if exact is False:
            raise ConfigError(f"{store.path}: no ANN index on {table.name}: run `mmrec index` first")
        return None
    rows = table.count_rows()
    if exact is None and rows < EXACT_SEARCH_BELOW:
        return None
    built = store.meta().get("index") or {}  # read once: this runs on every indexed search
    kind = INDEX_KINDS.get(built.get("kind", DEFAULT_KIND), INDEX_KINDS[DEFAULT_KIND])
    breadth = _breadth(built, table.name, near)
    return kind.with_breadth(breadth) if breadth else replace(kind, ef=search_ef(kind, rows))


def index_entry(store: CatalogStore, table: Any) -> dict[str, Any]:
    """What `mmrec index` recorded for table (an IndexReport as JSON; {} if nothing)."""
    return _entry(store.meta().get("index") or {}, table.name)


def _breadth(built: dict[str, Any], table: str, near: bool) -> int | None:
    entry = _entry(built, table)
    return entry.get("breadth") if near else entry.get("far_breadth")


def _entry(built: dict[str, Any], table: str) -> dict[str, Any]:
    return next((t for t in built.get("tables", []) if t.get("table") == table), {})


def far_sketch(store: CatalogStore, table: Any, exact: bool | None) -> tuple[Any, int] | None:
    """(sketch, rows to re-score) when calibration chose the sketch for table's
    off-item queries and the table is unchanged since; None: use search_kind."""
    if exact is True:
        return None
    entry = index_entry(store, table)
    if entry.get("far_route") != "sketch" or entry.get("sketch_version") != table.version:
        return None  # never chosen, or rows written since: the graph (and its flat tail) serves
    if exact is None and table.count_rows() < EXACT_SEARCH_BELOW:
        return None
    from mmrec.search import sketch as sketches

    loaded = sketches.load(store.path, table.name, entry["sketch_version"])
    return None if loaded is None else (loaded, int(entry["sketch_rerank"]))
