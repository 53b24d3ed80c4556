"""mmrec.Catalog: the public Python API over storage, ingest and search."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.catalog.ingest import (
    IngestOptions,
    IngestSummary,
    ProgressFn,
    _noop,
    content_hash,
    ingest_directory,
)
from mmrec.catalog.lock import write_lock
from mmrec.catalog.matrix import MATRIX_COLUMNS
from mmrec.catalog.resident import DEFAULT_MAX_BYTES, keep_resident, resident_items
from mmrec.catalog.store import CatalogStore, db_path
from mmrec.catalog.thumbs import ThumbReport, build_thumbnails, ensure_thumbnail
from mmrec.errors import ConfigError
from mmrec.extractors import embed_texts
from mmrec.fusion import TEXT_MODALITIES, FusionLayout
from mmrec.recommend import (
    BatchReport,
    EvalReport,
    EventReport,
    ImportReport,
    RecommendOptions,
    TextEncoder,
    UserRecommendations,
    UserVectorConfig,
    evaluate_catalog,
    hold_user_state,
    import_interactions,
    recommend_all_users,
    recommend_for_user,
    record_event_batches,
    record_events,
)
from mmrec.search import DEFAULT_KIND as DEFAULT_INDEX_KIND
from mmrec.search import (
    SPREAD_KEY,
    IndexReport,
    SearchResult,
    build_indexes,
    calibrate_indexes,
    check_where,
    nearest_items,
    nearest_segments,
    query_weights,
    random_modalities,
    record_spreads,
    vector_index_status,
)

DEFAULT_DB = "mmrec.lance"
DEFAULT_PRESET = "default"


def default_db_path() -> Path:
    """$MMREC_DB if set, else ./mmrec.lance."""
    return Path(os.environ.get("MMREC_DB") or DEFAULT_DB)


class Catalog:
    """A catalog of media items in a LanceDB directory.

    Args:
        path: the catalog directory (default: $MMREC_DB or ./mmrec.lance).
        device, batch_size, model_paths: passed to the extractors when they load.
    """

    def __init__(self, path: str | Path | None = None, *, device: str | None = None,
                 batch_size: int | None = None, model_paths: dict[str, str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self._load_kwargs: dict[str, Any] = {"device": device, "batch_size": batch_size,
                                             "model_paths": model_paths}
        self._loaded: dict[str, Any] = {}  # preset -> extractor of the set self._preset
        self._store: CatalogStore | None = None
        self._preset: str | None = None
        self._sources: dict[tuple[Any, ...], list[Any]] = {}  # (set, chosen) -> TextSources
        # (extractors, texts) -> {modality: vectors}: what text queries and interests go
        # through (the HTTP service batches concurrent ones: set_text_embedder)
        self._embed_texts: Callable[[Sequence[Any], list[str]], dict[str, np.ndarray]] = embed_texts

    def set_text_embedder(self, embed: Callable[[Sequence[Any], list[str]], dict[str, np.ndarray]]) -> None:
        """Send every text this handle embeds (queries, interests, comments) through
        embed(extractors, texts) -> {modality: [len(texts), dim]}: a service's batcher."""
        self._embed_texts = embed

    # -- extractors ---------------------------------------------------------------
    def _open(self) -> CatalogStore:
        """The catalog's store, opened once and kept (its tables see later commits)."""
        if self._store is None or not CatalogStore.exists(self.path):
            self._store = CatalogStore.open(self.path)
        return self._store

    def hold_in_memory(self, max_bytes: int = DEFAULT_MAX_BYTES, shared_writes: bool = False) -> bool:
        """For a long-lived reader (the HTTP service): keep the item and segment vectors and
        every user's interactions in memory from now on, so searches and recommendations
        read no table (mmrec.catalog.resident, mmrec.recommend.state). Returns whether
        every user's interactions fit (the vectors are kept while they fit max_bytes).
        shared_writes: other processes of the same service post events too (its workers)."""
        store = self._open()
        keep_resident(store, max_bytes)
        return hold_user_state(store, shared=shared_writes)

    def store(self) -> CatalogStore:
        """The open store, for long-lived readers such as the HTTP service (every read sees
        the commits of other processes); raises CatalogNotFoundError when there is none."""
        return self._open()

    def extractors(self, preset: str | None = None, store: CatalogStore | None = None,
                   modalities: Sequence[str] | None = None) -> list[Any]:
        """The extractor set: the given preset, else $MMREC_PRESET, the catalog's, or 'default'.

        Models load on first use and stay loaded; `modalities` asks for only some of them."""
        from mmrec.extractors import load_extractor, set_modalities

        name = self.preset_name(preset, store)
        if self._preset != name:
            self._loaded, self._preset = {}, name
        wanted = [p for p, m in set_modalities(name).items() if modalities is None or m in modalities]
        for p in wanted:
            if p not in self._loaded:
                self._loaded[p] = load_extractor(p, **self._load_kwargs)
        return [self._loaded[p] for p in wanted]

    def _attach_sources(self, extractors: list[Any], only: Sequence[str] | None) -> None:
        """Give the set's text extractors its text sources (speech, on-screen text; `only`
        those named), built once per set and choice: ingest needs them, queries never do."""
        from mmrec.extractors import attach_sources

        key = (self._preset, None if only is None else tuple(only))
        if key not in self._sources:
            self._sources[key] = attach_sources(extractors, str(self._preset), only=only,
                                                device=self._load_kwargs["device"],
                                                model_paths=self._load_kwargs["model_paths"])
        for e in extractors:
            if e.modality in TEXT_MODALITIES:
                e.text_sources = tuple(self._sources[key])

    def preset_name(self, preset: str | None = None, store: CatalogStore | None = None) -> str:
        """The extractor set in use: preset, else $MMREC_PRESET, the catalog's, or 'default'."""
        stored = None
        if store is not None:
            stored = store.meta().get("preset")
        elif not (preset or os.environ.get("MMREC_PRESET")) and CatalogStore.exists(self.path):
            stored = self._open().meta().get("preset")
        return preset or os.environ.get("MMREC_PRESET") or stored or DEFAULT_PRESET

    @staticmethod
    def _layout(extractors: list[Any]) -> FusionLayout:
        return FusionLayout.from_extractors(extractors)

    def _store_for(self, extractors: list[Any]) -> CatalogStore:
        """The catalog's store (created on first ingest); its layout must match the extractors'."""
        layout = self._layout(extractors)
        if CatalogStore.exists(self.path):
            store = self._open()
            store.check_layout(layout)
            return store
        self._store = CatalogStore.create(self.path, layout, {"preset": self._preset})
        return self._store

    def _check_fingerprints(self, store: CatalogStore, extractors: list[Any]) -> None:
        stored = {d["modality"]: d for d in store.meta().get("extractors", [])}
        for e in extractors:
            s = stored.get(e.modality)
            if s and s["fingerprint"] != e.fingerprint:
                raise ConfigError(
                    f"catalog {self.path} was built with {s['preset']} (fingerprint "
                    f"{s['fingerprint']}, weights {s['weights']}); this query uses {e.preset} "
                    f"(fingerprint {e.fingerprint}, weights {e.weights_source}): pass the same "
                    f"--preset/--model-path as at ingest, or re-ingest with these weights"
                )

    # -- public API ---------------------------------------------------------------
    def ingest(self, directory: str | Path, *, preset: str | None = None,
               only: Sequence[str] | None = None, options: IngestOptions | None = None,
               progress: ProgressFn = _noop,
               should_stop: Callable[[], bool] = lambda: False, engine: str = "local",
               address: str | None = None, gpus_per_worker: float | None = None,
               ray_workers: int | None = None) -> IngestSummary:
        """Ingest every media file under directory (unchanged files are skipped).

        Args:
            directory: a directory (walked) or a single media file.
            preset: extractor set; default $MMREC_PRESET, else the catalog's, else 'default'.
            only: run just these extractors of the set (names like "clip" or modalities
                like "visual"); the other modalities keep their stored vectors.
            options: walk/batching options (IngestOptions).
            progress: called with (event, data) as files are planned, embedded or fail,
                and ("thumbnails", {"total": n}) before the posters are made.
            should_stop: polled between files; True stops the run cleanly (see ingest_directory).
            engine: "local" (this process), or "ray": the same ingest on a Ray cluster
                (mmrec.distributed, docs/scale-out.md; needs `pip install 'mmrec[ray]'`), at
                `address` (None: a local instance, "auto", "HOST:PORT") with `ray_workers`
                embed actors of `gpus_per_worker` GPUs each (None: from the cluster).

        One ingest writes to a catalog at a time (CatalogBusyError otherwise); queries
        can run meanwhile and see the last committed batch. Then, with the lock released,
        the poster thumbnails of the files embedded are made (options.thumbnails;
        summary.thumbs, the "thumbs" timing; mmrec.catalog.thumbs).
        """
        if not Path(directory).exists():
            raise ConfigError(f"{directory}: no such file or directory to ingest")
        run = _ingest_engine(engine, lambda: str(self._preset), self._load_kwargs, address,
                             gpus_per_worker, ray_workers)
        with write_lock(self.path):
            extractors = self.extractors(preset)
            self._attach_sources(extractors, (options or IngestOptions()).sources)
            store = self._store_for(extractors)
            summary = run(store, _subset(extractors, only), directory, options, progress, should_stop)
            store.set_meta({"preset": self._preset, "extractors": [e.describe() for e in extractors]})
            if summary.item_ids:
                record_spreads(store)  # the query weights' scale (mmrec.search.spread)
        if (options or IngestOptions()).thumbnails and summary.item_ids and not summary.interrupted:
            progress("thumbnails", {"total": len(summary.item_ids)})
            # refresh: an item embedded again may have other segments than its old thumbnails
            summary.thumbs = build_thumbnails(store, self.path, summary.item_ids, refresh=True,
                                              should_stop=should_stop)
            summary.timings["thumbs"] = summary.thumbs.seconds
            summary.seconds += summary.thumbs.seconds
        return summary

    def search(self, *, text: str | None = None, file: str | Path | None = None,
               item: str | None = None, k: int = 10, modality: str = "all",
               weights: str | dict[str, float] | None = None, where: str | None = None,
               moments: bool = False, best_segment: bool = True, exact: bool | None = None,
               preset: str | None = None) -> SearchResult:
        """Items (or moments) most similar to a text, a file or a catalogued item.

        Args:
            text / file / item: exactly one query. A catalogued file reuses its stored
                vectors and is excluded from the results; other files are embedded now.
            k: number of results.
            modality: "all" or one of visual/audio/text (only that block scores).
            weights: "visual=1,audio=0.5" or a dict; per query, no re-ingest needed.
            where: SQL filter on item columns, e.g. "duration > 60 AND kind = 'video'".
            moments: rank segments (file + start/end) instead of whole items.
            best_segment: attach each item hit's best-matching segment.
            exact: True forces a flat scan, False the ANN index; None decides by size.
            preset: extractor set for text/uncatalogued-file queries (default: the catalog's).
        """
        if sum(x is not None for x in (text, file, item)) != 1:
            raise ConfigError("give exactly one of text=, file= or item=")
        _positive_k(k)
        if text is not None and not text.strip():
            raise ConfigError("the text query is empty: give some words to search for")
        store = self._open()
        if where:
            check_where(store, where)  # before any model loads
        layout = store.layout
        notes: list[str] = []
        w = query_weights(store, weights, modality, notes)
        exclude: tuple[str, ...] = ()
        if text is not None:
            extractors = self.extractors(preset, store, [m for m in layout.modalities if w.get(m)])
            self._check_fingerprints(store, extractors)
            vectors = {m: v[0] for m, v in self._embed_texts(extractors, [text]).items()}
            notes += [f"{e.preset} runs on random weights: its {e.modality} scores are meaningless"
                      for e in extractors if e.is_random and w.get(e.modality, 1.0)]
        else:
            row = self._find(store, item) if item is not None else self._catalogued(store, file)
            if row is not None:  # the fused vector holds every modality's unit vector
                parts = layout.split(np.asarray(row["fused"], np.float32))
                vectors = {m: v if np.any(v) else None for m, v in parts.items()}
                exclude = (row["id"],)
            else:
                vectors = self._embed_file(store, Path(str(file)), preset)
            notes += [f"{e['preset']} ran on random weights at ingest: its {e['modality']} scores "
                      "are meaningless" for e in store.meta().get("extractors", [])
                      if e.get("random_weights") and w.get(e["modality"], 1.0)]
        present = {m: v for m, v in vectors.items() if v is not None}
        query = layout.query(present, w)
        if not np.any(query):
            raise ConfigError(
                f"the query has no vector for the weighted modalities ({_weighted(w)}); it has "
                f"{', '.join(present) or 'none'}: choose another --modality/--weights")
        if moments:
            hits = nearest_segments(store, query, k, where, exclude, exact,
                                    tuple(m for m, v in w.items() if v))
        else:
            hits = nearest_items(store, query, k, where, exclude, best_segment, exact)
        return SearchResult(hits, notes)

    def _find(self, store: CatalogStore, item: str) -> dict[str, Any]:
        copy = resident_items(store)  # a long-lived reader's items in memory: an id needs no read
        at = None if copy is None else copy.items.index.get(item)
        row = copy.items.rows([at], MATRIX_COLUMNS)[0] if at is not None else store.find_item(item)
        if row is None:
            raise ConfigError(f"no item {item!r} in {self.path}: use an id from `mmrec query --json`"
                              " output or a catalogued path")
        return row

    def _catalogued(self, store: CatalogStore, file: str | Path | None) -> dict[str, Any] | None:
        path = Path(str(file))
        if not path.is_file():
            raise ConfigError(f"{path}: no such file to query with")
        row = store.find_item(db_path(path.resolve()))
        return row or store.find_item(content_hash(path))

    def _embed_file(self, store: CatalogStore, path: Path, preset: str | None) -> dict[str, Any]:
        from mmrec.extractors import MediaItem
        from mmrec.media import probe, read_text_meta

        extractors = self.extractors(preset, store)
        self._check_fingerprints(store, extractors)
        info = probe(path)
        media = MediaItem(str(path), info, read_text_meta(path, info))
        out: dict[str, Any] = {}
        for e in extractors:
            if e.applies_to(media):
                out[e.modality] = e.embed_media([media])[0].item_vector
        return out

    last_thumbnails: ThumbReport | None = None  # what the last index() did for thumbnails

    def index(self, kind: str = DEFAULT_INDEX_KIND, calibrate_only: bool = False, *,
              thumbnails: bool = True) -> list[IndexReport]:
        """Build the ANN indexes (items and segments), measure their search breadth and
        the sketch for off-item queries (mmrec.search.sketch), or only measure and sketch again;
        see mmrec.search.index for when search uses them. Then, with the lock released, make
        the missing thumbnails of every item (thumbnails=True; the ThumbReport is kept in
        `self.last_thumbnails`)."""
        with write_lock(self.path):
            store = self._open()
            reports = calibrate_indexes(store) if calibrate_only else build_indexes(store, kind)
            record_spreads(store)
        if thumbnails:
            self.last_thumbnails = build_thumbnails(store, self.path)
        return reports

    def errors(self) -> list[dict[str, Any]]:
        """Every recorded failure: path, stage, error type, message, time."""
        return self._open().errors.to_arrow().sort_by("path").to_pylist()

    # -- users and recommendations -------------------------------------------------
    def text_encoder(self, store: CatalogStore, preset: str | None = None) -> TextEncoder:
        """texts -> {modality: vectors} with every text tower of the catalog's extractors,
        loaded on first use (only interests and comments need models)."""

        def encode(texts: list[str]) -> dict[str, np.ndarray]:
            extractors = self.extractors(preset, store)
            self._check_fingerprints(store, extractors)
            return self._embed_texts(extractors, texts)

        return encode

    def import_interactions(self, path: str | Path, *, skip_bad: bool = False) -> ImportReport:
        """Store a CSV/JSONL file of user interactions (see mmrec.recommend.interactions for columns).

        Rows naming unknown items or events are rejected with their line numbers; with any
        rejected row nothing is written unless skip_bad=True. A re-import adds nothing.
        """
        with write_lock(self.path), write_lock(self.path, "interactions"):
            return import_interactions(self._open(), path, skip_bad)

    def record_events(self, events: Sequence[dict[str, Any]], *, partial: bool = False,
                      source: str = "events", dry_run: bool = False) -> EventReport:
        """Store live interaction events (dicts with the interactions columns: user_id, item,
        event, value, timestamp, text), all or nothing unless partial (dry_run: only check
        them). They take only the interactions lock, so events keep flowing while an ingest
        writes; the very next recommendation for that user reflects them."""
        if dry_run:
            return record_events(self._open(), events, dry_run=True)
        with write_lock(self.path, "interactions"):
            return record_events(self._open(), events, partial, source)

    def record_event_batches(self, batches: Sequence[tuple[Sequence[dict[str, Any]], bool]], *,
                             source: str = "events", lock_wait_s: float = 0.0) -> list[EventReport]:
        """record_events for several (events, partial) batches, each checked on its own, all
        accepted ones stored in one commit (a service's group commit). lock_wait_s: how long
        to wait for another writer of the interactions (a sibling worker's commit)."""
        with write_lock(self.path, "interactions", wait_s=lock_wait_s):
            return record_event_batches(self._open(), batches, source)

    def recommend(self, *, user: str | None = None, interests: str | None = None, k: int = 10,
                  explain: bool = False, options: RecommendOptions | None = None,
                  user_config: UserVectorConfig | None = None, preset: str | None = None,
                  weights: str | dict[str, float] | None = None) -> UserRecommendations:
        """What a user (their stored history) or interests text should see next.

        Args:
            user: a user id from the imported interactions.
            interests: "jazz, travel vlogs": a cold-start user, or a prior blended into `user`.
            k: number of recommendations.
            explain: add per-modality shares, the history item it resembles, a sentence.
            options: rerank (popularity, freshness, diversity), exclude_seen, backend.
            user_config: user-vector settings (attention tau, recency half-life, event weights).
            weights: modality weights ("visual=1,text=1" or a dict); default 1 for each
                real-weight modality and 0 for random ones, balanced by their spread.
        """
        store = self._open()
        opts = replace(options or RecommendOptions(), k=_positive_k(k), explain=explain)
        return recommend_for_user(store, opts, user=user, interests=interests,
                                  encode=self.text_encoder(store, preset), user_config=user_config,
                                  weights=weights)

    def recommend_all(self, out: str | Path, *, k: int = 10, options: RecommendOptions | None = None,
                      user_config: UserVectorConfig | None = None, engine: str = "local",
                      address: str | None = None, ray_workers: int | None = None) -> BatchReport:
        """Top-k for every user with interactions, batched through the kernels, to Parquet.

        engine "ray" ranks blocks of users on a Ray cluster (`address`; 2 x `ray_workers`
        blocks, default from its CPUs): `out` is then a directory of Parquet parts, or a Lance
        dataset when it ends in .lance (mmrec.distributed.recommend)."""
        write = None
        if engine == "ray":
            from mmrec.distributed import RayOptions, ray_rows_writer

            write = ray_rows_writer(RayOptions(address, None, ray_workers))
        elif engine != "local":
            raise ConfigError(f"engine {engine!r}: use 'local' or 'ray'")
        store = self._open()
        opts = replace(options or RecommendOptions(), k=_positive_k(k))
        return recommend_all_users(store, out, opts, encode=self.text_encoder(store),
                                   user_config=user_config, write=write)

    def evaluate(self, interactions: str | Path, *, k: int = 10, holdout: str = "last",
                 options: RecommendOptions | None = None,
                 user_config: UserVectorConfig | None = None,
                 sentiment: str = "on") -> tuple[EvalReport, list[Any]]:
        """precision/recall/F1/NDCG@k, MRR, coverage, novelty of mmrec and of popularity
        and random baselines on a held-out split ("last" per user, or a time ratio "0.2");
        comment sentiment "on", "off", or "compare" (both mmrec rows side by side)."""
        return evaluate_catalog(self._open(), interactions, k=_positive_k(k), holdout=holdout,
                                options=options, user_config=user_config, sentiment=sentiment)

    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, errors, extractors and fingerprints, index, storage size."""
        store = self._open()
        meta = store.meta()
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return {**store.counts(), "extractors": meta.get("extractors", []),
                "preset": meta.get("preset"), "fusion": [b.__dict__ for b in store.layout.blocks],
                "index": vector_index_status(store), "storage_bytes": size, "path": str(self.path),
                "spreads": meta.get(SPREAD_KEY, {}).get("modalities", {}),
                "random_modalities": sorted(random_modalities(store))}

    def thumbnail(self, item_id: str, seg_id: str | None = None) -> Path:
        """The path of the JPEG poster of an item (seg_id None) or of one of its segments
        ("<item id>:<modality>:<index>"), made now if it is missing.

        Raises ThumbnailIdError (an id not in the catalog's format, or a segment of another
        item), ThumbnailNotFoundError (no such item or segment), MediaError (the file
        cannot be thumbnailed: moved, deleted, corrupt). See mmrec.catalog.thumbs."""
        return ensure_thumbnail(self._open(), item_id, seg_id)


def _positive_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ConfigError(f"k must be a positive whole number, got {k!r}")
    return k


def _ingest_engine(engine: str, set_name: Callable[[], str], load: dict[str, Any], address: str | None,
                   gpus_per_worker: float | None, workers: int | None) -> Callable[..., IngestSummary]:
    """ingest_directory, or for engine "ray" its Ray twin (Ray is imported only then)."""
    if engine == "local":
        return ingest_directory
    if engine != "ray":
        raise ConfigError(f"engine {engine!r}: use 'local' or 'ray'")
    from mmrec.distributed import RayOptions, ray_ingester

    return ray_ingester(set_name, {k: v for k, v in load.items() if k != "device"},
                        RayOptions(address, gpus_per_worker, workers))


def _subset(extractors: list[Any], only: Sequence[str] | None) -> list[Any]:
    if not only:
        return extractors
    known = {e.name: e for e in extractors} | {e.modality: e for e in extractors}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise ConfigError(f"--extractors {','.join(unknown)}: not in this preset (it has "
                          f"{', '.join(f'{e.name} ({e.modality})' for e in extractors)})")
    return [e for e in extractors if e.name in only or e.modality in only]


def _weighted(w: dict[str, float]) -> str:
    return ", ".join(f"{m}={v:g}" for m, v in w.items() if v) or "none"
