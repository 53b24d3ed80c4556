"""Nearest items to a weighted fused query, with per-modality scores and the best moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrec.catalog import CatalogStore, resident, sql_list
from mmrec.errors import ConfigError
from mmrec.search.in_memory import resident_rows
from mmrec.search.index import far_sketch, search_kind


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    modality: str
    label: str = ""
    seg_id: str = ""
    text: str | None = None  # a text segment's words (a title, subtitles, speech, screen text)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Segment:
        return cls(row["start"], row["end"], row["modality"], row["label"] or "", row["seg_id"],
                   row.get("text"))


@dataclass(frozen=True)
class Hit:
    """One search result: the item, its fused score and where the score comes from."""

    rank: int
    item_id: str
    path: str
    title: str
    kind: str
    score: float
    scores: dict[str, float]
    segment: Segment | None = None

    def to_json(self) -> dict[str, Any]:
        seg = None if self.segment is None else {
            "start": self.segment.start, "end": self.segment.end, "modality": self.segment.modality,
            "label": self.segment.label, "seg_id": self.segment.seg_id}
        return {"rank": self.rank, "item_id": self.item_id, "path": self.path, "title": self.title,
                "kind": self.kind, "score": self.score, "scores": self.scores, "segment": seg}


@dataclass
class SearchResult:
    hits: list[Hit]
    notes: list[str] = field(default_factory=list)


def _vector_query(store: CatalogStore, table: Any, column: str, query: np.ndarray,
                  where: str | None, exact: bool | None, limit: int, near: bool = False) -> Any:
    """A LanceDB dot-product query for `limit` rows: exact scan, or the ANN index with its
    kind's settings and this catalog's calibrated breadth (near: query is a stored vector)."""
    q = table.search(query.astype(np.float32), vector_column_name=column).distance_type("dot")
    q = q.limit(limit)
    if where:
        q = q.where(where, prefilter=True)
    kind = search_kind(store, table, exact, near)
    return q.bypass_vector_index() if kind is None else kind.configure(q, limit)


def _search_rows(store: CatalogStore, table: Any, column: str, query: np.ndarray, where: str | None,
                 exact: bool | None, limit: int, columns: list[str] | None, near: bool = False
                 ) -> list[dict[str, Any]]:
    """The top `limit` rows by query · column (near: query is a stored vector). An unfiltered
    query from outside the catalog takes the sketch's scan where calibration chose it
    (mmrec.search.sketch); every other query the LanceDB search of _vector_query."""
    if table is store.items and column == "fused" and not where and columns is not None:
        kept = resident_rows(store, query, limit, columns, exact)  # a long-lived reader's copy
        if kept is not None:
            return kept
    route = None if near or where else far_sketch(store, table, exact)
    if route is not None:
        from mmrec.search.sketch import search_rows

        sketch, rerank = route
        return search_rows(table, column, sketch, query, limit, rerank, columns)
    q = _vector_query(store, table, column, query, where, exact, limit, near)
    return _checked_rows(q if columns is None else q.select(columns), where)


def _checked_rows(q: Any, where: str | None) -> list[dict[str, Any]]:
    try:
        return q.to_arrow().to_pylist()
    except (ValueError, RuntimeError) as e:  # lance reports SQL errors as these
        if where:
            raise ConfigError(f"--where {where!r} is not a valid filter: {_first_line(e)}") from e
        raise


def check_where(store: CatalogStore, where: str) -> None:
    """Raise ConfigError naming the problem when `where` is not a valid item filter."""
    _checked_rows(store.items.search().where(where).select(["id"]).limit(1), where)


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


# What a hit needs; the text, tags and per-modality columns stay unread (~10% of a query at
# 1M). `_distance` is named because lance warns on every projection that leaves it out.
HIT_COLUMNS = ["id", "path", "title", "kind", "fused", "_distance"]


def nearest_items(
    store: CatalogStore,
    query: np.ndarray,
    k: int = 10,
    where: str | None = None,
    exclude: tuple[str, ...] = (),
    with_segments: bool = True,
    exact: bool | None = None,
) -> list[Hit]:
    """Top-k items by query · fused (see mmrec.search.index for exact vs ANN), each with its
    per-modality scores and, if with_segments, its best-matching segment."""
    # Excluded ids are dropped after the search (k + len(exclude) fetched): an `id !=`
    # prefilter would make the index evaluate a predicate over every row.
    skip = set(exclude)
    pred = f"({where})" if where else None
    # a query that excludes items was built from a stored one (search by item or catalogued
    # file): the narrower breadth calibrated for stored vectors finds its neighbours
    found = _search_rows(store, store.items, "fused", query, pred, exact, k + len(skip), HIT_COLUMNS,
                         near=bool(skip))
    rows = [r for r in found if r["id"] not in skip][:k]
    if not rows:  # a filter that matches nothing
        return []
    fused = np.array([r["fused"] for r in rows], dtype=np.float32).reshape(len(rows), -1)
    scores = fused @ query
    parts = store.layout.modality_scores(query, fused)
    order = np.argsort(-scores, kind="stable")
    best = best_segments(store, query, [rows[i]["id"] for i in order]) if with_segments else {}
    return [
        Hit(rank=n + 1, item_id=rows[i]["id"], path=rows[i]["path"], title=rows[i]["title"],
            kind=rows[i]["kind"], score=float(scores[i]),
            scores={m: round(float(v[i]), 6) for m, v in parts.items()},
            segment=best.get(rows[i]["id"]))
        for n, i in enumerate(order)
    ]


def nearest_ids(store: CatalogStore, query: np.ndarray, n: int, exact: bool | None = None) -> list[str]:
    """Ids of the n items nearest to query (by query · fused; index as for nearest_items):
    the candidate stage of recommending from a large catalog."""
    return [r["id"] for r in nearest_rows(store, query, n, ["id"], exact)]


def nearest_rows(store: CatalogStore, query: np.ndarray, n: int, columns: list[str],
                 exact: bool | None = None) -> list[dict[str, Any]]:
    """These columns of the n items nearest to query (as nearest_ids), read in the search."""
    return _search_rows(store, store.items, "fused", query, None, exact, n, [*columns, "_distance"])


def nearest_segments(
    store: CatalogStore,
    query: np.ndarray,
    k: int = 10,
    where: str | None = None,
    exclude: tuple[str, ...] = (),
    exact: bool | None = None,
    modalities: tuple[str, ...] | None = None,
) -> list[Hit]:
    """Top-k moments: segments ranked by query · segment vector (several may share a file).

    `where` filters on item columns; it is resolved to the matching item ids first.
    `modalities`: only segments of these (those the query weighs: the others score 0).
    """
    preds = [f"item_id NOT IN ({sql_list(exclude)})"] if exclude else []
    if modalities is not None:
        preds.append(f"modality IN ({sql_list(modalities)})")
    if where:
        ids = [r["id"] for r in _checked_rows(
            store.items.search().where(where).select(["id"]).limit(None), where)]
        if not ids:
            return []
        preds.append(f"item_id IN ({sql_list(ids)})")
    rows = _search_rows(store, store.segments, "vector", query, " AND ".join(preds) or None, exact, k, None,
                        near=bool(exclude))
    if not rows:
        return []
    vecs = np.array([r["vector"] for r in rows], dtype=np.float32)
    scores = vecs @ query
    parts = store.layout.modality_scores(query, vecs)
    items = {r["id"]: r for r in store.get_items(list({r["item_id"] for r in rows}),
                                                  ["id", "path", "title", "kind"])}
    order = np.argsort(-scores, kind="stable")
    return [
        Hit(rank=n + 1, item_id=rows[i]["item_id"], path=items[rows[i]["item_id"]]["path"],
            title=items[rows[i]["item_id"]]["title"], kind=items[rows[i]["item_id"]]["kind"],
            score=float(scores[i]), scores={m: round(float(v[i]), 6) for m, v in parts.items()},
            segment=Segment.from_row(rows[i]))
        for n, i in enumerate(order) if rows[i]["item_id"] in items
    ]


def best_segments(store: CatalogStore, query: np.ndarray, item_ids: list[str]) -> dict[str, Segment]:
    """For each item, its segment with the highest query score (the moment to show)."""
    if not item_ids:
        return {}
    kept = resident(store)
    copy = None if kept is None else kept.segments()
    if copy is not None:  # a long-lived reader's copy: no table read
        best_kept: dict[str, Segment] = {}
        for item in item_ids:
            lo, hi = copy.span(item)
            if hi > lo:
                best_kept[item] = Segment.from_row(copy.row(lo + int(np.argmax(copy.vectors[lo:hi] @ query))))
        return best_kept
    rows = (store.segments.search().where(f"item_id IN ({sql_list(item_ids)})").limit(None)
            .to_arrow().to_pylist())
    best: dict[str, tuple[float, Segment]] = {}
    for r in rows:
        s = float(np.dot(np.asarray(r["vector"], np.float32), query))
        if r["item_id"] not in best or s > best[r["item_id"]][0]:
            best[r["item_id"]] = (s, Segment.from_row(r))
    return {k: v[1] for k, v in best.items()}
