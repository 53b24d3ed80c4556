"""The item matrix: every item's fused vector with the columns a result shows, as arrays
(what recommending scores against, and what a long-lived reader keeps in memory)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.errors import ConfigError

from .store import CatalogStore, vector_matrix

MATRIX_COLUMNS = ["id", "path", "title", "kind", "fused", "ingested_at"]


@dataclass(frozen=True)
class ItemMatrix:
    """Every item's fused vector, with the columns recommendations show."""

    ids: list[str]
    paths: list[str]
    titles: list[str]
    kinds: list[str]
    vectors: np.ndarray  # float32 [N, D]
    ingested_at: np.ndarray  # epoch seconds [N]
    index: dict[str, int] = field(default_factory=dict)

    def positions(self, ids: Iterable[str]) -> list[int]:
        """Rows of these item ids, in their order (ids the matrix lacks left out)."""
        return [p for p in map(self.index.get, ids) if p is not None]

    def subset(self, positions: Sequence[int]) -> ItemMatrix:
        """These rows of the matrix, in this order (arrays sliced, no row built)."""
        at = np.asarray(positions, dtype=np.int64)
        ids = [self.ids[p] for p in positions]
        return ItemMatrix(ids, [self.paths[p] for p in positions], [self.titles[p] for p in positions],
                          [self.kinds[p] for p in positions], self.vectors[at], self.ingested_at[at],
                          {i: n for n, i in enumerate(ids)})

    def rows(self, positions: Iterable[int], columns: Sequence[str]) -> list[dict[str, Any]]:
        """These items as table rows (only MATRIX_COLUMNS), like a LanceDB read returns."""
        getters = {"id": self.ids, "path": self.paths, "title": self.titles, "kind": self.kinds}
        out = []
        for p in positions:
            row: dict[str, Any] = {}
            for c in columns:
                if c in getters:
                    row[c] = getters[c][p]
                elif c == "fused":
                    row[c] = self.vectors[p]
                elif c == "ingested_at":
                    row[c] = float(self.ingested_at[p])
            out.append(row)
        return out


def load_items(store: CatalogStore, ids: Iterable[str] | None = None) -> ItemMatrix:
    """The item matrix of a catalog (one projected scan), or of just the given item ids."""
    if ids is not None:
        return matrix_of(store.items_by_id(ids, MATRIX_COLUMNS), store.layout.dim)
    t = store.columns(store.items, MATRIX_COLUMNS)
    if t.num_rows == 0:
        raise ConfigError(f"{store.path}: the catalog has no items: run `mmrec ingest DIR` first")
    return matrix_of(t, store.layout.dim)


def matrix_of(t: pa.Table, dim: int) -> ItemMatrix:
    """An ItemMatrix of a table with MATRIX_COLUMNS."""
    vectors = vector_matrix(t.column("fused"), dim)
    micros = t.column("ingested_at").cast(pa.int64()).to_numpy(zero_copy_only=False)
    ingested = micros.astype(np.float64) / 1e6
    ids = t.column("id").to_pylist()
    return ItemMatrix(ids, t.column("path").to_pylist(), t.column("title").to_pylist(),
                      t.column("kind").to_pylist(), vectors, ingested,
                      {i: n for n, i in enumerate(ids)})


def _epoch(value: Any) -> float:
    if value is None:
        return 0.0
    return float(value) if isinstance(value, int | float) else value.timestamp()


def with_rows(items: ItemMatrix, rows: Sequence[Mapping[str, Any]]) -> ItemMatrix:
    """items plus these item rows (as search returns them) that it does not hold yet."""
    new = [r for r in rows if r["id"] not in items.index]
    if not new:
        return items
    ids = items.ids + [r["id"] for r in new]
    vectors = np.concatenate([items.vectors, np.asarray([r["fused"] for r in new], np.float32)])
    added = np.array([_epoch(r["ingested_at"]) for r in new], np.float64)
    ingested = np.concatenate([items.ingested_at, added])
    return ItemMatrix(ids, items.paths + [r["path"] for r in new], items.titles + [r["title"] for r in new],
                      items.kinds + [r["kind"] for r in new], vectors, ingested,
                      {i: n for n, i in enumerate(ids)})
