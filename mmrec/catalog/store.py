"""LanceDB storage of a catalog: items, segments, errors and catalog metadata.

The store knows Arrow and NumPy, never torch. Writes are batched upserts
(`merge_insert` on the key), so a rerun never duplicates rows and a kill loses at
most the batch in flight. An item's segments are written before its item row: the
item row is the commit marker, so an item that has a row has all its segments.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from mmrec.errors import ConfigError, MmrecError
from mmrec.fusion import FusionLayout

log = logging.getLogger(__name__)

ITEMS, SEGMENTS, ERRORS, META = "items", "segments", "errors", "meta"
INTERACTIONS = "interactions"
# rows of an interactions file that compaction leaves alone: bounds its work on a large
# table, while keeping a million rows in ~60 files (each file a read must open)
INTERACTION_FILE_ROWS = 16_384


class CatalogNotFoundError(MmrecError):
    """No catalog exists at the path given."""


def vector_column(modality: str) -> str:
    """Items column of a modality's unit vector ("visual_vec"; null when missing)."""
    return f"{modality}_vec"


def _vec(dim: int) -> pa.DataType:
    return pa.list_(pa.float32(), dim)


# What the text sources read (catalogs made before them get these columns, null, on the
# next write): the whole transcript, its language, and the text read on screen.
TRANSCRIPT_FIELDS = (pa.field("transcript", pa.string()), pa.field("language", pa.string()),
                     pa.field("screen_text", pa.string()))


def items_schema(layout: FusionLayout) -> pa.Schema:
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.float64()),
        pa.field("duration", pa.float64()),
        pa.field("kind", pa.string()),
        pa.field("title", pa.string()),
        pa.field("text", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
        *[pa.field(vector_column(b.modality), _vec(b.dim), nullable=True) for b in layout.blocks],
        pa.field("fused", _vec(layout.dim)),
        pa.field("fingerprints", pa.string()),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC")),
        *TRANSCRIPT_FIELDS,
    ]
    return pa.schema(fields, metadata={"mmrec.fusion": layout.to_json()})


SEGMENT_TEXT = pa.field("text", pa.string())  # a text segment's words (null for media segments)


def segments_schema(layout: FusionLayout) -> pa.Schema:
    # A segment vector lives in the fused layout (its modality's block set, the rest
    # zero), so a weighted query scores segments and items with one dot product.
    return pa.schema([
        pa.field("seg_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("modality", pa.string()),
        pa.field("start", pa.float64()),
        pa.field("end", pa.float64()),
        pa.field("label", pa.string()),
        pa.field("vector", _vec(layout.dim)),
        SEGMENT_TEXT,
    ])


def segments_table(layout: FusionLayout, segments: list[SegmentRecord]) -> pa.Table:
    """Segment records as rows of the segments table (also built on mmrec.distributed's
    workers, which write them as Lance fragments)."""
    rows = [{
        "seg_id": f"{s.item_id}:{s.modality}:{s.index}", "item_id": s.item_id,
        "modality": s.modality, "start": s.start, "end": s.end, "label": s.label,
        "vector": s.vector.astype(np.float32), "text": None if s.text is None else utf8(s.text),
    } for s in segments]
    return pa.Table.from_pylist(rows, schema=segments_schema(layout))


ERRORS_SCHEMA = pa.schema([
    pa.field("path", pa.string(), nullable=False),
    pa.field("stage", pa.string()),
    pa.field("error", pa.string()),
    pa.field("message", pa.string()),
    pa.field("time", pa.timestamp("us", tz="UTC")),
])
INTERACTIONS_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),  # hash of the row: a re-import is a no-op
    pa.field("user_id", pa.string()),
    pa.field("item_id", pa.string()),
    pa.field("event", pa.string()),
    pa.field("value", pa.float64()),
    pa.field("timestamp", pa.float64()),  # epoch seconds
    pa.field("text", pa.string()),
    pa.field("source", pa.string()),
    pa.field("sentiment", pa.float64()),  # the comment's, in [-1, 1]; null without one
])
META_SCHEMA = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])


@dataclass
class ItemRecord:
    """One item row, ready to store (vectors as float32 NumPy arrays)."""

    id: str
    path: str
    size: int
    mtime: float
    duration: float | None
    kind: str
    title: str
    text: str
    tags: list[str]
    vectors: dict[str, np.ndarray | None]
    fused: np.ndarray
    fingerprints: dict[str, str]
    ingested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    transcript: str | None = None  # speech, as the speech source read it
    language: str | None = None  # the transcript's language, when the model says
    screen_text: str | None = None  # on-screen text, as the screen source read it


@dataclass
class SegmentRecord:
    item_id: str
    modality: str
    index: int
    start: float
    end: float
    label: str
    vector: np.ndarray  # fused-layout vector
    text: str | None = None  # what a text segment embeds


def utf8(text: str) -> str:
    """Text safe for an Arrow string: undecodable bytes (surrogate escapes) become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def db_path(path: str | Path) -> str:
    """A file path as the catalog stores it (UTF-8; bytes of names from other systems
    that are not UTF-8 written as \\xNN, see fs_path for the way back)."""
    return utf8(str(path))


def fs_path(stored: str) -> str:
    """The file-system path of a stored path (db_path's inverse)."""
    if "\\x" not in stored:
        return stored
    return re.sub(r"\\x([89a-f][0-9a-f])", lambda m: chr(0xDC00 + int(m.group(1), 16)), stored)


def _connect(path: str | Path) -> Any:
    """A LanceDB connection whose tables see other processes' commits on every read
    (a long-lived Catalog keeps one store open while an ingest writes)."""
    from .lancedb_lazy import import_lancedb

    return import_lancedb().connect(str(path), read_consistency_interval=timedelta(0))


def vector_matrix(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    """A fixed-size-list vector column as a contiguous (rows, dim) float32 array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, np.float32).reshape(len(column), dim)


def sql_str(value: str) -> str:
    """An SQL string literal: single-quoted, inner quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: Iterable[str]) -> str:
    """The inside of an SQL `IN (...)`: the values quoted, comma-separated."""
    return ", ".join(map(sql_str, values))


class CatalogStore:
    """The LanceDB tables of one catalog directory."""

    def __init__(self, path: str | Path, db: Any, layout: FusionLayout) -> None:
        self.path = Path(path)
        self.db = db
        self.layout = layout
        self.items = db.open_table(ITEMS)
        self.segments = db.open_table(SEGMENTS)
        self.errors = db.open_table(ERRORS)
        self.meta_table = db.open_table(META)
        self._meta: tuple[int, dict[str, Any]] | None = None  # (meta table version, parsed)
        # Figures derived from the tables that a long-lived reader keeps up to date itself
        # instead of recounting (the HTTP service's popularity count): name -> value.
        self.derived: dict[str, Any] = {}
        self._interactions: Any = None  # the interactions table, once it exists
        self._interaction_columns_checked = False  # add_interactions: every column is there
        self._appender: Any = None  # the interactions table as a Lance dataset (see _append)
        # table name -> its latest version, from a watcher that polls them
        # (mmrec.catalog.resident): reads that would check a version trust it instead
        self.version_hint: Callable[[str], int | None] | None = None

    # -- lifecycle ---------------------------------------------------------------
    @staticmethod
    def exists(path: str | Path) -> bool:
        return (Path(path) / f"{META}.lance").exists()

    @classmethod
    def open(cls, path: str | Path) -> CatalogStore:
        if not cls.exists(path):
            raise CatalogNotFoundError(
                f"{path}: no mmrec catalog here: run `mmrec ingest DIR --db {path}` first"
            )
        db = _connect(path)
        meta = {r["key"]: r["value"] for r in db.open_table(META).to_arrow().to_pylist()}
        if "fusion" not in meta:
            raise CatalogNotFoundError(f"{path}: catalog metadata is incomplete (no fusion layout)")
        return cls(path, db, FusionLayout.from_json(meta["fusion"]))

    @classmethod
    def create(cls, path: str | Path, layout: FusionLayout, meta: dict[str, Any]) -> CatalogStore:
        Path(path).mkdir(parents=True, exist_ok=True)
        db = _connect(path)
        existing = set(db.list_tables().tables) if hasattr(db, "list_tables") else set()
        for name, schema in ((ITEMS, items_schema(layout)), (SEGMENTS, segments_schema(layout)),
                             (ERRORS, ERRORS_SCHEMA), (META, META_SCHEMA)):
            if name not in existing:
                db.create_table(name, schema=schema, exist_ok=True)
        store = cls(path, db, layout)
        store.set_meta({"fusion": layout.to_json(), "created_at": time.time(), **meta})
        return store

    # -- metadata ----------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        """The catalog's metadata (read again only when its table has a new version: every
        indexed search consults it, and parsing it costs ~1 ms)."""
        known = self.version_hint("meta") if self.version_hint is not None else None
        if known is not None and self._meta is not None and self._meta[0] >= known:
            return dict(self._meta[1])
        version = self.meta_table.version
        if self._meta is None or self._meta[0] != version:
            out: dict[str, Any] = {}
            for r in self.meta_table.to_arrow().to_pylist():
                try:
                    out[r["key"]] = json.loads(r["value"])
                except (TypeError, json.JSONDecodeError):
                    out[r["key"]] = r["value"]
            self._meta = (version, out)
        return dict(self._meta[1])

    def set_meta(self, values: dict[str, Any]) -> None:
        rows = [{"key": k, "value": v if isinstance(v, str) else json.dumps(v)}
                for k, v in values.items()]
        (self.meta_table.merge_insert("key").when_matched_update_all()
         .when_not_matched_insert_all().execute(pa.Table.from_pylist(rows, schema=META_SCHEMA)))
        self._meta = None  # read again, whatever version_hint says

    # -- writes ------------------------------------------------------------------
    def write(self, items: list[ItemRecord], segments: list[SegmentRecord],
              modalities: tuple[str, ...] | None = None) -> None:
        """Upsert a batch: segments first (these items' old segments of the written
        modalities removed, all modalities by default), then the item rows."""
        if not items:
            return
        self.upgrade_schema()
        self.delete_segments([i.id for i in items], modalities)
        if segments:
            self.segments.add(self._segments_table(segments))
        self.upsert_items(items)

    def upgrade_schema(self) -> None:
        """Give a catalog made before a column existed (transcripts, segment text) that
        column, null in its old rows: a metadata-only change, no row is rewritten."""
        for table, fields in ((self.items, TRANSCRIPT_FIELDS), (self.segments, (SEGMENT_TEXT,))):
            have = set(table.schema.names)
            missing = [f for f in fields if f.name not in have]
            if missing:
                table.add_columns(missing)

    def has_column(self, table: Any, name: str) -> bool:
        return name in table.schema.names

    def delete_segments(self, ids: list[str], modalities: tuple[str, ...] | None = None) -> None:
        """Delete these items' segments of these modalities (all by default)."""
        only = f" AND modality IN ({sql_list(modalities)})" if modalities else ""
        self.segments.delete(f"item_id IN ({sql_list(ids)}){only}")

    def upsert_items(self, items: list[ItemRecord]) -> None:
        """Upsert item rows by id: the commit marker, so their segments are written first."""
        table = self._items_table(items)
        # on_bad_vectors="null": a missing modality is a legitimate null vector.
        (self.items.merge_insert("id").when_matched_update_all()
         .when_not_matched_insert_all().execute(table, on_bad_vectors="null"))
        # A file whose content changed got a new id: drop the row of its old content.
        for i in items:
            self.delete_where(f"path = {sql_str(i.path)} AND id != {sql_str(i.id)}")

    def _items_table(self, items: list[ItemRecord]) -> pa.Table:
        rows = []
        for i in items:
            row: dict[str, Any] = {
                "id": i.id, "path": i.path, "size": i.size, "mtime": i.mtime,
                "duration": i.duration, "kind": i.kind, "title": utf8(i.title), "text": utf8(i.text),
                "tags": [utf8(t) for t in i.tags], "fused": i.fused.astype(np.float32),
                "fingerprints": json.dumps(i.fingerprints, sort_keys=True),
                "ingested_at": i.ingested_at,
                "transcript": None if i.transcript is None else utf8(i.transcript),
                "language": i.language,
                "screen_text": None if i.screen_text is None else utf8(i.screen_text),
            }
            for b in self.layout.blocks:
                v = i.vectors.get(b.modality)
                row[vector_column(b.modality)] = None if v is None else np.asarray(v, np.float32)
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=items_schema(self.layout))

    def _segments_table(self, segments: list[SegmentRecord]) -> pa.Table:
        return segments_table(self.layout, segments)

    def delete_where(self, predicate: str) -> int:
        """Delete items (and their segments) matching an SQL predicate; returns the count."""
        ids = [r["id"] for r in self.items.search().where(predicate).select(["id"])
               .limit(None).to_arrow().to_pylist()]
        if not ids:
            return 0
        quoted = sql_list(ids)
        self.segments.delete(f"item_id IN ({quoted})")
        self.items.delete(f"id IN ({quoted})")
        return len(ids)

    def delete_orphan_segments(self) -> int:
        """Delete segments whose item row does not exist; returns how many."""
        items = set(self.columns(self.items, ["id"]).column("id").to_pylist())
        seg_items = set(self.columns(self.segments, ["item_id"]).column("item_id").to_pylist())
        orphans = sorted(seg_items - items)
        for k in range(0, len(orphans), 500):
            self.segments.delete(f"item_id IN ({sql_list(orphans[k:k + 500])})")
        return len(orphans)

    def record_error(self, path: str, stage: str, error: str, message: str) -> None:
        """Store a failure; a file's previous failures are replaced, not accumulated."""
        self.clear_errors(path)
        row = {"path": path, "stage": stage, "error": error, "message": utf8(message),
               "time": datetime.now(UTC)}
        self.errors.add(pa.Table.from_pylist([row], schema=ERRORS_SCHEMA))

    def clear_errors(self, path: str) -> None:
        self.errors.delete(f"path = {sql_str(path)}")

    # -- reads -------------------------------------------------------------------
    def file_index(self) -> dict[str, dict[str, Any]]:
        """path -> {id, size, mtime, fingerprints} for every stored item (the skip check)."""
        rows = self.columns(self.items, ["id", "path", "size", "mtime", "fingerprints"]).to_pylist()
        index = {r["path"]: r for r in rows}
        if len(index) < len(rows):  # two contents for one path: a run was killed mid-write;
            seen: dict[str, int] = {}  # leave the path out so the next ingest rewrites it
            for r in rows:
                seen[r["path"]] = seen.get(r["path"], 0) + 1
            index = {p: r for p, r in index.items() if seen[p] == 1}
        return index

    @staticmethod
    def columns(table: Any, names: list[str]) -> pa.Table:
        """Some columns of every row (a projected scan: vectors are not read)."""
        return table.search().select(names).limit(None).to_arrow()

    def get_items(self, ids: list[str], columns: list[str] | None = None) -> list[dict[str, Any]]:
        return self.items_by_id(ids, columns).to_pylist()

    def items_by_id(self, ids: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        """The rows of these item ids (unknown ids are skipped), in no particular order."""
        return self._items_in("id", ids, columns)

    def _items_in(self, column: str, values: Iterable[str], columns: list[str] | None) -> pa.Table:
        values = list(values)
        if not values:  # no query at all: `x IN ()` is no SQL, and a predicate would scan the table
            empty = self.items.schema.empty_table()
            return empty.select(columns) if columns else empty
        q = self.items.search().where(f"{column} IN ({sql_list(values)})").limit(None)
        return (q.select(columns) if columns else q).to_arrow()

    def items_by_path(self, paths: Iterable[str], columns: list[str] | None = None) -> pa.Table:
        """The rows catalogued at these paths (unknown paths are skipped)."""
        return self._items_in("path", paths, columns)

    def find_item(self, key: str) -> dict[str, Any] | None:
        """An item by id, id prefix (>= 8 chars) or exact path."""
        for pred in (f"id = {sql_str(key)}", f"path = {sql_str(key)}",
                     f"path = {sql_str(str(Path(key).resolve()))}"):
            rows = self.items.search().where(pred).limit(2).to_arrow().to_pylist()
            if rows:
                return rows[0]
        if len(key) >= 8:
            rows = self.items.search().where(f"id LIKE {sql_str(key + '%')}").limit(2).to_arrow().to_pylist()
            if len(rows) == 1:
                return rows[0]
        return None

    def segments_of(self, item_id: str) -> list[dict[str, Any]]:
        """An item's segments (no vectors), in time order."""
        t = (self.segments.search().where(f"item_id = {sql_str(item_id)}").limit(None)
             .select(["seg_id", "modality", "start", "end", "label",
                      *(["text"] if self.has_column(self.segments, "text") else [])]).to_arrow())
        return t.sort_by([("start", "ascending"), ("modality", "ascending")]).to_pylist()

    def counts(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for k in self.columns(self.items, ["kind"]).column("kind").to_pylist():
            kinds[k] = kinds.get(k, 0) + 1
        return {
            "items": self.items.count_rows(),
            "by_kind": kinds,
            "segments": self.segments.count_rows(),
            "errors": self.errors.count_rows(),
            "interactions": 0 if (t := self.interactions_table()) is None else t.count_rows(),
            **{f"with_{c}": self.items.count_rows(f"{c} IS NOT NULL AND {c} != ''")
               for c in ("transcript", "screen_text") if self.has_column(self.items, c)},
        }

    # -- interactions ------------------------------------------------------------
    def interactions_table(self, create: bool = False) -> Any | None:
        """The interactions table (created on the first import; None before, unless create).
        Once found, the handle is kept: it sees later commits like the others, and a
        request that checks the table's version need not list the tables again."""
        if self._interactions is None:
            if INTERACTIONS in set(self.db.list_tables().tables):
                self._interactions = self.db.open_table(INTERACTIONS)
            elif create:
                self._interactions = self.db.create_table(INTERACTIONS, schema=INTERACTIONS_SCHEMA,
                                                          exist_ok=True)
        return self._interactions

    def add_interactions(self, rows: list[dict[str, Any]], new: bool = False) -> tuple[int, int]:
        """Upsert interaction rows (dicts with INTERACTIONS_SCHEMA's fields; a missing one
        is null) in one commit; returns (how many were new, the version written). new: the
        caller knows no key is stored yet, so the rows are appended (no key lookup: about
        a third of an upsert's time). A table made before a column existed (`sentiment`)
        gets it first, null in its old rows."""
        table = self.interactions_table(create=True)
        if not self._interaction_columns_checked:
            have = set(table.schema.names)
            missing = [f for f in INTERACTIONS_SCHEMA if f.name not in have]
            if missing:  # an all-null column: a metadata-only change, no row is rewritten
                table.add_columns(missing)
                self._appender = None
            self._interaction_columns_checked = True  # columns are only ever added
        if not rows:
            return 0, int(table.version)
        data = pa.Table.from_pylist(rows, schema=INTERACTIONS_SCHEMA)
        if new:
            return len(rows), self._append(data)
        done = table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(data)
        return int(done.num_inserted_rows), int(done.version)

    def _interactions_dataset(self) -> Any | None:
        if self._appender is None and (table := self.interactions_table()) is not None:
            self._appender = table.to_lance()
        return self._appender

    def _append(self, data: pa.Table) -> int:
        """Append rows with Lance itself, returning the version written. LanceDB's add hops
        to its event-loop thread and back several times, and each hop waits for the GIL:
        beside a thread busy in Python an append took 36 ms that way and 17 ms directly.
        A dataset behind other writers' commits still appends on top of them."""
        import lance

        ds = self._interactions_dataset()
        self._appender = lance.write_dataset(data.select(ds.schema.names).cast(ds.schema), ds, mode="append")
        return int(self._appender.version)

    def interactions_version(self) -> int:
        """The interactions table's latest version (-1: no table yet), read with Lance
        itself for the same reason as _append (a writer checks it before each commit)."""
        ds = self._interactions_dataset()
        return -1 if ds is None else int(ds.latest_version)

    def interaction_keys(self, keys: Iterable[str]) -> set[str]:
        """Those of these interaction keys that are stored."""
        table = self.interactions_table()
        keys = list(dict.fromkeys(keys))
        if table is None or not keys:
            return set()
        t = table.search().where(f"key IN ({sql_list(keys)})").select(["key"]).limit(None).to_arrow()
        return set(t.column("key").to_pylist())

    def interactions_appended(self, since: int, until: int) -> pa.Table | None:
        """The interaction rows versions since+1 .. until appended, or None when one of
        those commits did more than append (see mmrec.catalog.changes)."""
        from .changes import appended_rows

        table = self.interactions_table()
        return None if table is None else appended_rows(table, since, until)

    def interaction_fragments(self) -> int:
        """Small data files of the interactions table (under INTERACTION_FILE_ROWS rows): each
        live event batch adds one, and a scan reads them all, so a long-lived writer compacts
        them (compact_interactions). Counted from the manifest: no file is read."""
        table = self.interactions_table()
        if table is None:
            return 0
        return sum(f.metadata.physical_rows < INTERACTION_FILE_ROWS for f in table.to_lance().get_fragments())

    def compact_interactions(self, indexes: bool = True,
                             committing: Callable[[], AbstractContextManager[Any]] = nullcontext) -> None:
        """Merge the interactions table's small files into files of up to INTERACTION_FILE_ROWS
        rows (files that size are left alone, so the work stays bounded however large the
        table grows) and, with indexes, take the new rows into its indexes (a rewrite of
        each; rows not yet in an index are scanned meanwhile). Readers see the same rows.

        The files are rewritten before `committing()` (the caller's interactions lock) is
        entered, and only the commits run inside it: appends committed meanwhile stay, as
        Lance rebases a rewrite over them, so event writes wait ~4 ms for a compaction
        instead of the ~20-50 ms its rewrite takes."""
        from lance.optimize import Compaction

        table = self.interactions_table()
        if table is None:
            return
        ds = table.to_lance()
        plan = Compaction.plan(ds, {"target_rows_per_fragment": INTERACTION_FILE_ROWS})
        rewrites = [task.execute(ds) for task in plan.tasks]
        with committing():
            if rewrites:
                Compaction.commit(ds, rewrites)
            if indexes:
                table.to_lance().optimize.optimize_indices()

    def prune_interaction_versions(self, older_than: timedelta = timedelta(days=7)) -> None:
        """Delete the files only versions older than this use (each event commit makes a
        version); makes no commit, so it needs no lock."""
        table = self.interactions_table()
        if table is not None:
            table.to_lance().cleanup_old_versions(older_than=older_than)

    def interactions(self, user: str | None = None,
                     items: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Interaction rows: all of them, or only one user's and/or those on these item ids
        (filtered inside LanceDB, so a recommendation need not read every row)."""
        table = self.interactions_table()
        if table is None:
            return []
        preds = [] if user is None else [f"user_id = {sql_str(user)}"]
        if items is not None:
            ids = list(items)
            if not ids:
                return []
            preds.append(f"item_id IN ({sql_list(ids)})")
        if not preds:
            return table.to_arrow().to_pylist()
        return table.search().where(" AND ".join(preds)).limit(None).to_arrow().to_pylist()

    def interaction_rows(self) -> int:
        """How many interactions are stored. Rows are only ever added, keyed by their
        content, so this count changes exactly when the interactions do (index builds
        and compactions, which bump the table version, leave it alone)."""
        table = self.interactions_table()
        return 0 if table is None else table.count_rows()

    def interaction_columns(self, columns: list[str], items: Iterable[str] | None = None) -> pa.Table:
        """These columns of every interaction (or of those on these item ids), as Arrow."""
        table = self.interactions_table()
        if table is None:
            return INTERACTIONS_SCHEMA.empty_table().select(columns)
        q = table.search().select(columns).limit(None)
        if items is not None:
            q = q.where(f"item_id IN ({sql_list(items)})")
        return q.to_arrow()

    def user_counts(self) -> dict[str, int]:
        """{user_id: number of stored interactions}, most active first."""
        t = self.interaction_columns(["user_id"])
        if not len(t):
            return {}
        g = t.group_by("user_id").aggregate([("user_id", "count")]).sort_by(
            [("user_id_count", "descending"), ("user_id", "ascending")])
        return dict(zip(g["user_id"].to_pylist(), g["user_id_count"].to_pylist(), strict=True))

    def check_layout(self, layout: FusionLayout) -> None:
        if layout != self.layout:
            raise ConfigError(
                f"{self.path}: catalog layout {self.layout.to_json()} differs from the "
                f"extractors' {layout.to_json()}: use the catalog's preset or a new --db"
            )
