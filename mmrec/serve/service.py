"""The service's long-lived state: one `Catalog` handle (its tables see other processes'
commits on every read), the extractors loaded once, and the JSON views the API returns.

Routes call these methods from worker threads (FastAPI runs plain `def` endpoints in a
thread pool), so a slow upload or text embedding never blocks the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from mmrec.catalog import (
    MATRIX_COLUMNS,
    Catalog,
    fs_path,
    resident,
    resident_items,
    vector_column,
    write_lock,
)
from mmrec.errors import ConfigError
from mmrec.recommend import compact_interactions, options_from, user_state_figures
from mmrec.search import prepare_resident

from .batcher import Batcher
from .config import ServeConfig
from .filters import where_clause
from .gate import Gate
from .schemas import Event, RecommendRequest, SearchOptions, SearchRequest, field_errors

log = logging.getLogger(__name__)
COMPACT_AFTER = 32  # small interactions files before the service compacts them
COMPACT_CHECK_EVERY = 8  # event commits between two counts of those files
# compactions between two that also rebuild the table's indexes (~10 ms at 10k rows, ~180 ms
# at 1M, while events wait; rows not in an index yet are scanned, a few small files) and
# between two prunes of old versions' files (no lock: it commits nothing)
INDEX_EVERY, PRUNE_EVERY = 8, 64
# how long an event commit waits for another writer of the interactions: a sibling worker's
# commit (milliseconds) or compaction (a fraction of a second); past it, 503 "busy"
EVENT_LOCK_WAIT_S = 5.0


class NotFound(ConfigError):
    """A request named an item or user the catalog does not have (HTTP 404)."""


class Service:
    """What the routes serve, over one catalog."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.catalog = Catalog(config.db)
        self.store = self.catalog.store()  # raises CatalogNotFoundError: nothing to serve
        # vectors and users' interactions in memory: requests read no table
        self.catalog.hold_in_memory(int(config.memory_gb * 2**30),
                                    shared_writes=config.workers > 1)
        # one commit at a time, holding every batch posted meanwhile (the file lock is per call)
        self.events = Batcher(lambda batches: self.catalog.record_event_batches(
            batches, source="api", lock_wait_s=EVENT_LOCK_WAIT_S))
        self.texts = Batcher(embed_together)  # one forward pass for the texts queued meanwhile
        # requests computing at once (search, recommend); one waiting for a batch gives its slot back
        self.gate = Gate(config.compute_slots)
        self.catalog.set_text_embedder(self._embed_texts)
        self._compacting = threading.Lock()  # held while checking whether to compact, and compacting
        self.compactions = 0
        self.started = time.time()

    def _embed_texts(self, extractors: Any, texts: list[str]) -> dict[str, np.ndarray]:
        with self.gate.released():
            return self.texts.submit((tuple(extractors), texts))

    def preload(self) -> None:
        """Load every extractor of the catalog's set now, not at the first query."""
        t = time.perf_counter()
        self.catalog.extractors(self.config.preset, self.store)
        log.info("extractors loaded in %.1f s", time.perf_counter() - t)
        prepare_resident(self.store)  # the copy's candidate stage, before the first request

    # -- search -------------------------------------------------------------------
    def _k(self, k: int) -> int:
        if k > self.config.max_k:
            raise ConfigError(f"k: {k} is more than this service allows (max_k {self.config.max_k})")
        return k

    def _search(self, opts: SearchOptions, **query: Any) -> dict[str, Any]:
        with self.gate.held():
            return self._search_now(opts, **query)

    def _search_now(self, opts: SearchOptions, **query: Any) -> dict[str, Any]:
        result = self.catalog.search(
            **query, k=self._k(opts.k), modality=opts.modality, weights=opts.weights,
            where=where_clause(opts.filters), moments=opts.moments, preset=self.config.preset)
        return {"hits": [self._hit(h.to_json()) for h in result.hits], "notes": result.notes,
                "moments": opts.moments}

    def search(self, req: SearchRequest) -> dict[str, Any]:
        if (req.text is None) == (req.item is None):
            raise ConfigError("give exactly one of text or item")
        if req.item is not None:
            self.item_row(req.item, ["id"])  # 404 before any work
            return self._search(req, item=req.item)
        return self._search(req, text=req.text)

    def search_file(self, path: Path, opts: SearchOptions) -> dict[str, Any]:
        return self._search(opts, file=path)

    @staticmethod
    def _hit(hit: dict[str, Any]) -> dict[str, Any]:
        """A hit as the API shows it: links instead of the file system path."""
        hit.pop("path", None)
        iid = hit["item_id"]
        hit["media_url"] = f"/media/{iid}"
        hit["thumb_url"] = f"/thumbs/{iid}"
        if hit.get("segment") and hit["segment"].get("seg_id"):
            hit["segment"]["thumb_url"] = f"/thumbs/{iid}/{hit['segment']['seg_id']}"
        return hit

    # -- items --------------------------------------------------------------------
    def item_count(self) -> int:
        """How many items the catalog holds: the in-memory copy's length when it is current
        (a health probe reads no table), else the table's row count."""
        copy = resident_items(self.store)
        return len(copy.items.ids) if copy is not None else int(self.store.items.count_rows())

    def item_row(self, item_id: str, columns: list[str] | None = None) -> dict[str, Any]:
        """The item's stored row (these columns only, when given), or NotFound."""
        copy = resident_items(self.store)  # current, so an id it lacks is in no version
        if copy is not None and columns is not None and not set(columns) - set(MATRIX_COLUMNS):
            at = copy.items.index.get(item_id)
            rows = [] if at is None else copy.items.rows([at], columns)
        else:
            rows = self.store.get_items([item_id], columns)
        if not rows:
            raise NotFound(f"no item {item_id!r} in this catalog")
        return rows[0]

    def item(self, item_id: str) -> dict[str, Any]:
        row = self.item_row(item_id)
        random = self.random_modalities()
        presence = {m: row.get(vector_column(m)) is not None and bool(np.any(row[vector_column(m)]))
                    for m in self.store.layout.modalities}
        return {
            "item_id": row["id"], "title": row["title"], "kind": row["kind"],
            "duration": row["duration"], "tags": row["tags"] or [], "text": row["text"],
            "ingested_at": row["ingested_at"].isoformat() if row["ingested_at"] else None,
            "modalities": {m: {"present": p, "random_weights": m in random} for m, p in presence.items()},
            "segments": self.segments(item_id), "media_url": f"/media/{item_id}",
            "thumb_url": f"/thumbs/{item_id}",
        }

    def segments(self, item_id: str) -> list[dict[str, Any]]:
        return [{**s, "thumb_url": f"/thumbs/{item_id}/{s['seg_id']}"}
                for s in self.store.segments_of(item_id)]

    def media_path(self, item_id: str) -> Path:
        """The catalogued file of an item: the only way a request reaches the file system."""
        path = Path(fs_path(self.item_row(item_id, ["id", "path"])["path"]))
        if not path.is_file():
            raise NotFound(f"item {item_id}: its file is no longer at its catalogued path")
        return path

    def thumbnail(self, item_id: str, seg_id: str | None = None) -> Path:
        """A poster or segment thumbnail, made on first request (catalogs from before
        thumbnails, or files ingested with --no-thumbnails)."""
        return self.catalog.thumbnail(self.item_row(item_id, ["id"])["id"], seg_id)

    # -- users and recommendations -------------------------------------------------
    def users(self) -> list[dict[str, Any]]:
        return [{"user_id": u, "interactions": n} for u, n in self.store.user_counts().items()]

    def recommend(self, req: RecommendRequest) -> dict[str, Any]:
        if req.user is None and req.interests is None:
            raise ConfigError("give a user, interests, or both")
        with self.gate.held():
            return self._recommend(req)

    def _recommend(self, req: RecommendRequest) -> dict[str, Any]:
        options, user_config = options_from(
            diversity=req.diversity, popularity_weight=req.popularity_weight,
            freshness_weight=req.freshness_weight, half_life_days=req.half_life_days,
            exclude_seen=req.exclude_seen)
        recs = self.catalog.recommend(user=req.user, interests=req.interests, k=self._k(req.k),
                                      explain=req.explain, options=options, user_config=user_config,
                                      preset=self.config.preset, weights=req.weights)
        out = []
        for r in recs.to_json():
            because = r.pop("because", None)
            r["because"] = None if because is None else {"item_id": because["item_id"],
                                                         "title": because["title"]}
            out.append(self._hit(r))
        return {"user": recs.user, "history": recs.history, "recommendations": out, "notes": recs.notes}

    # -- events -------------------------------------------------------------------
    def record_events(self, raw: list[Any], partial: bool) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body): each event checked on its own, then against the catalog."""
        rejected: list[dict[str, Any]] = []
        good: list[tuple[int, dict[str, Any]]] = []
        now = time.time()
        for i, obj in enumerate(raw):
            if not isinstance(obj, dict):
                rejected.append({"index": i, "reason": f"expected an event object, got {type(obj).__name__}"})
                continue
            try:
                ev = Event.model_validate(obj)
            except ValidationError as e:
                rejected.append({"index": i, "reason": "; ".join(
                    f"{f['field'] or 'event'}: {f['message']}" for f in field_errors(e.errors()))})
                continue
            rec = ev.model_dump()
            rec["timestamp"] = now if rec["timestamp"] is None else rec["timestamp"]
            good.append((i, rec))
        records = [r for _, r in good]
        if rejected and not partial:  # nothing is written: say what else is wrong, too
            report = self.catalog.record_events(records, dry_run=True)
        else:
            report = self.events.submit((records, partial))
            if report.written:
                self._compact_when_due()
        rejected += [{"index": good[r.line][0], "reason": r.reason} for r in report.rejected]
        rejected.sort(key=lambda r: r["index"])
        ok = report.written or not rejected
        return (200 if ok else 422), self._event_body(len(raw), report.stored, rejected, report.written)

    def _compact_when_due(self) -> None:
        """Each event batch is one small file of the interactions table, and every read scans
        them all (hundreds slowed a user's read from 6 ms to 1.6 s): past COMPACT_AFTER,
        one background thread compacts the table; event writes wait only for its commits."""
        if self.events.runs % COMPACT_CHECK_EVERY or not self._compacting.acquire(blocking=False):
            return  # not due, or another thread is checking or compacting
        if self.store.interaction_fragments() < COMPACT_AFTER:
            self._compacting.release()
            return

        def compact() -> None:
            n, self.compactions = self.compactions, self.compactions + 1
            try:
                t = time.perf_counter()
                compact_interactions(self.store, indexes=n % INDEX_EVERY == 0, locked=self._interactions_lock)
                log.info("interactions compacted in %.3f s", time.perf_counter() - t)
                if n % PRUNE_EVERY == PRUNE_EVERY - 1:
                    self.store.prune_interaction_versions()
            except Exception as e:  # never fatal: the next event batch tries again
                log.warning("compacting the interactions table failed: %s", e)
            finally:
                self._compacting.release()

        threading.Thread(target=compact, name="mmrec-compact", daemon=True).start()

    @contextmanager
    def _interactions_lock(self) -> Iterator[None]:
        """No event commit of this process, nor any other writer of the interactions, meanwhile."""
        with self.events.lock, write_lock(self.config.db, "interactions", wait_s=EVENT_LOCK_WAIT_S):
            yield

    @staticmethod
    def _event_body(received: int, stored: int, rejected: list[dict[str, Any]], written: bool) -> dict:
        body = {"received": received, "stored": stored, "written": written, "rejected": rejected}
        if rejected and not written:
            first = rejected[0]
            body["error"] = (f"{len(rejected)} of {received} events rejected, nothing stored; event "
                             f"{first['index']}: {first['reason']}")
        return body

    # -- stats --------------------------------------------------------------------
    def random_modalities(self) -> set[str]:
        return {e["modality"] for e in self.store.meta().get("extractors", []) if e.get("random_weights")}

    def stats(self) -> dict[str, Any]:
        s = self.catalog.stats()
        s.pop("path", None)
        s["random_modalities"] = sorted(self.random_modalities())
        s["table_versions"] = self.versions()
        s["users"] = len(self.store.user_counts())
        s["in_memory"] = self.in_memory()
        return s

    def in_memory(self) -> dict[str, Any]:
        """What requests answer from memory now (a table not copied, or whose copy is behind
        a commit, is read per request), how event batches were grouped into commits and
        text queries into forward passes."""
        kept = resident(self.store)
        copies = {"items": None if kept is None else kept.items(),
                  "segments": None if kept is None else kept.segments()}
        return {**{name: None if c is None else {"version": c.version, "mb": round(c.nbytes / 2**20, 1)}
                   for name, c in copies.items()},
                "all_user_histories": user_state_figures(self.store)["complete"],
                "followed_commits": user_state_figures(self.store)["followed_commits"],
                "event_commits": self.events.runs, "event_batches": self.events.calls,
                "interaction_compactions": self.compactions,
                "text_passes": self.texts.runs, "texts": self.texts.calls}

    def versions(self) -> dict[str, int]:
        """Each table's current version: a request sees one consistent version per table."""
        out = {"items": self.store.items.version, "segments": self.store.segments.version}
        table = self.store.interactions_table()
        if table is not None:
            out["interactions"] = table.version
        return out



def embed_together(calls: list[tuple[tuple[Any, ...], list[str]]]) -> list[dict[str, np.ndarray]]:
    """Embed the texts of several calls (extractors, texts) with one pass per extractor set,
    and split the vectors back per call."""
    from mmrec.extractors import embed_texts

    out: list[dict[str, np.ndarray] | None] = [None] * len(calls)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (extractors, _) in enumerate(calls):
        groups.setdefault(tuple(map(id, extractors)), []).append(i)
    for members in groups.values():
        texts = [t for i in members for t in calls[i][1]]
        vectors = embed_texts(calls[members[0]][0], texts)
        at = 0
        for i in members:
            n = len(calls[i][1])
            out[i] = {m: v[at:at + n] for m, v in vectors.items()}
            at += n
    return out  # type: ignore[return-value]
