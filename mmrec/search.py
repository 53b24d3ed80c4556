"""Nearest items to a weighted fused query, with per-modality scores and the best moment."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrec.store import CatalogStore, _sql_str

EXACT_SEARCH_BELOW = 50_000  # rows; above this an ANN index (if built) is used


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    modality: str
    label: str = ""


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
            "start": self.segment.start, "end": self.segment.end, "modality": self.segment.modality}
        return {"rank": self.rank, "item_id": self.item_id, "path": self.path, "title": self.title,
                "kind": self.kind, "score": self.score, "scores": self.scores, "segment": seg}


@dataclass
class SearchResult:
    hits: list[Hit]
    notes: list[str] = field(default_factory=list)


def nearest_items(
    store: CatalogStore,
    query: np.ndarray,
    k: int = 10,
    where: str | None = None,
    exclude: tuple[str, ...] = (),
    with_segments: bool = True,
) -> list[Hit]:
    """Top-k items by query · fused, exact below EXACT_SEARCH_BELOW rows or without an index."""
    preds = [f"({where})"] if where else []
    preds += [f"id != {_sql_str(x)}" for x in exclude]
    q = store.items.search(query.astype(np.float32), vector_column_name="fused").metric("dot")
    if preds:
        q = q.where(" AND ".join(preds), prefilter=True)
    if store.items.count_rows() < EXACT_SEARCH_BELOW or not store.items.list_indices():
        q = q.bypass_vector_index()
    else:
        q = q.nprobes(32).refine_factor(5)
    rows = q.limit(k).to_arrow().to_pylist()
    fused = np.array([r["fused"] for r in rows], dtype=np.float32).reshape(len(rows), -1)
    scores = fused @ query if rows else np.zeros(0)
    parts = store.layout.modality_scores(query, fused) if rows else {}
    order = np.argsort(-scores, kind="stable")
    best = best_segments(store, query, [rows[i]["id"] for i in order]) if with_segments else {}
    return [
        Hit(rank=n + 1, item_id=rows[i]["id"], path=rows[i]["path"], title=rows[i]["title"],
            kind=rows[i]["kind"], score=float(scores[i]),
            scores={m: round(float(v[i]), 6) for m, v in parts.items()},
            segment=best.get(rows[i]["id"]))
        for n, i in enumerate(order)
    ]


def best_segments(store: CatalogStore, query: np.ndarray, item_ids: list[str]) -> dict[str, Segment]:
    """For each item, its segment with the highest query score (the moment to show)."""
    if not item_ids:
        return {}
    quoted = ", ".join(_sql_str(i) for i in item_ids)
    rows = (store.segments.search().where(f"item_id IN ({quoted})").limit(None)
            .to_arrow().to_pylist())
    best: dict[str, tuple[float, Segment]] = {}
    for r in rows:
        s = float(np.dot(np.asarray(r["vector"], np.float32), query))
        if r["item_id"] not in best or s > best[r["item_id"]][0]:
            best[r["item_id"]] = (s, Segment(r["start"], r["end"], r["modality"], r["label"] or ""))
    return {k: v[1] for k, v in best.items()}
