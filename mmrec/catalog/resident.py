"""A long-lived reader's copy of the items and segments tables in memory (the HTTP service
keeps one), so that a search or a recommendation reads no table on its way.

A watcher thread reads the tables' versions every POLL_S seconds; requests compare the copy
against those figures and never wait on a version check. When a table has a new version (another
process committed) the watcher loads a new copy, and until it is in place `items()` or
`segments()` answers None: callers then read the table as a short-lived reader would.
Either way a request sees one version of each table, at most POLL_S old. A table whose
vectors would take the copies past `max_bytes` is not copied.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from .matrix import MATRIX_COLUMNS, ItemMatrix, matrix_of
from .store import CatalogStore, vector_matrix

log = logging.getLogger(__name__)
POLL_S = 0.1  # how often the watcher reads the tables' versions
DEFAULT_MAX_BYTES = 2 << 30  # largest copy of the item vectors kept (1M items x 512 dims)
KEY = "resident"  # where the Resident lives in CatalogStore.derived


@dataclass(frozen=True)
class ResidentItems:
    """Every item of one items-table version, as arrays (see ItemMatrix)."""

    version: int
    items: ItemMatrix
    rowids: np.ndarray  # each position's LanceDB row id
    memo: dict[Any, Any] = field(default_factory=dict)  # what callers derive from this copy

    @property
    def nbytes(self) -> int:
        return int(self.items.vectors.nbytes)


SEGMENT_FIELDS = ["seg_id", "item_id", "modality", "start", "end", "label", "text"]


@dataclass(frozen=True)
class ResidentSegments:
    """Every segment of one segments-table version, grouped by item."""

    version: int
    vectors: np.ndarray  # float32 [S, D], an item's segments together
    fields: dict[str, list[Any]]  # SEGMENT_FIELDS -> one value per row
    spans: dict[str, tuple[int, int]]  # item id -> [first, last) rows

    @property
    def nbytes(self) -> int:
        return int(self.vectors.nbytes)

    def span(self, item_id: str) -> tuple[int, int]:
        """The [first, last) rows of an item's segments ((0, 0): it has none)."""
        return self.spans.get(item_id, (0, 0))

    def row(self, i: int) -> dict[str, Any]:
        """Row i without its vector."""
        return {f: v[i] for f, v in self.fields.items()}


def keep_resident(store: CatalogStore, max_bytes: int = DEFAULT_MAX_BYTES,
                  poll_s: float = POLL_S) -> Resident:
    """Keep a copy of store's items in memory from now on (loaded before this returns)."""
    kept = store.derived.get(KEY)
    if kept is None:
        kept = store.derived[KEY] = Resident(store, max_bytes, poll_s)
    return kept


def resident(store: CatalogStore) -> Resident | None:
    """The store's Resident, if keep_resident was called on it."""
    return store.derived.get(KEY)


def resident_items(store: CatalogStore) -> ResidentItems | None:
    """The store's copy of its items when it has one of the latest version, else None."""
    kept = store.derived.get(KEY)
    return None if kept is None else kept.items()


class Resident:
    """The copy and the versions the watcher saw (see the module docstring)."""

    def __init__(self, store: CatalogStore, max_bytes: int = DEFAULT_MAX_BYTES,
                 poll_s: float = POLL_S) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.poll_s = poll_s
        self._versions: dict[str, int] = {}
        self._copies: dict[str, Any] = {}  # table name -> its copy
        self._too_big: dict[str, int] = {}  # table name -> a version too big to copy
        self._stop = threading.Event()
        self._poll()
        self._load()
        store.version_hint = self.version
        self._thread = threading.Thread(target=self._watch, name="mmrec-resident", daemon=True)
        self._thread.start()
        if not _WATCHING:  # registered after LanceDB's own exit handler (the store is open): runs first
            atexit.register(_stop_watching)
        _WATCHING.add(self)

    # -- what requests read ------------------------------------------------------------
    def items(self) -> ResidentItems | None:
        """The items' copy, when it is of the table's latest version; else None."""
        return self._current("items")

    def segments(self) -> ResidentSegments | None:
        """The segments' copy, when it is of the table's latest version; else None."""
        return self._current("segments")

    def _current(self, table: str) -> Any:
        copy = self._copies.get(table)
        return copy if copy is not None and copy.version == self._versions.get(table) else None

    def version(self, table: str) -> int | None:
        """The table's latest version as last seen (None: it does not exist yet)."""
        return self._versions.get(table)

    def close(self, wait_s: float = 0.0) -> None:
        self._stop.set()
        if wait_s:
            self._thread.join(wait_s)

    # -- the watcher -------------------------------------------------------------------
    def _poll(self) -> None:
        tables = {"items": self.store.items, "segments": self.store.segments, "meta": self.store.meta_table,
                  "interactions": self.store.interactions_table()}
        self._versions = {**self._versions, **{name: int(t.version) for name, t in tables.items()
                                               if t is not None}}

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self._poll()
                self._load()
            except Exception as e:  # noqa: BLE001 - never fatal: requests read the tables meanwhile
                log.warning("%s: keeping the catalog in memory failed (%s); requests read the tables",
                            self.store.path, e)
                self._stop.wait(5.0)

    def _load(self) -> None:
        """Copy each table not copied at its latest version (one projected scan each), while
        the copies fit in max_bytes together."""
        for name, table, load in (("items", self.store.items, _items_copy),
                                  ("segments", self.store.segments, _segments_copy)):
            copy, latest = self._copies.get(name), self._versions.get(name)
            if latest in (self._too_big.get(name), None if copy is None else copy.version):
                continue
            ds = table.to_lance()
            others = sum(c.nbytes for n, c in self._copies.items() if n != name)
            if ds.count_rows() * self.store.layout.dim * 4 + others > self.max_bytes:
                if name not in self._too_big:
                    log.warning("%s: the %s table's vectors would take the copies kept in memory past "
                                "%.1f GB: its requests read the table", self.store.path, name,
                                self.max_bytes / 2**30)
                self._too_big[name] = int(ds.version)
                self._copies.pop(name, None)
                continue
            t0 = time.perf_counter()
            self._copies[name] = load(ds, self.store.layout.dim)
            log.info("%s: %s in memory (version %d) in %.2f s", self.store.path, name, ds.version,
                     time.perf_counter() - t0)


_WATCHING: weakref.WeakSet[Resident] = weakref.WeakSet()


def _stop_watching() -> None:
    """Stop every watcher before LanceDB's own exit handler (registered earlier, so run
    later) drains its event loop: watchers still polling kept a test process from exiting."""
    for kept in list(_WATCHING):
        kept.close(wait_s=2.0)


def _items_copy(ds: Any, dim: int) -> ResidentItems:
    t = ds.to_table(columns=MATRIX_COLUMNS, with_row_id=True)
    return ResidentItems(int(ds.version), matrix_of(t, dim), t.column("_rowid").to_numpy().astype(np.int64))


def _segments_copy(ds: Any, dim: int) -> ResidentSegments:
    names = [f for f in SEGMENT_FIELDS if f in ds.schema.names]
    t = ds.to_table(columns=[*names, "vector"])
    t = t.take(pc.sort_indices(t, [("item_id", "ascending"), ("start", "ascending")]))
    items = t.column("item_id").to_pylist()
    spans: dict[str, tuple[int, int]] = {}
    for i, item in enumerate(items):
        lo, _ = spans.get(item, (i, i))
        spans[item] = (lo, i + 1)
    fields = {f: (t.column(f).to_pylist() if f in names else [None] * len(items)) for f in SEGMENT_FIELDS}
    return ResidentSegments(int(ds.version), vector_matrix(t.column("vector"), dim), fields, spans)
