"""mmrec.Catalog: the public Python API over storage, ingest and search."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout, parse_weights
from mmrec.ingest import (
    IngestOptions,
    IngestSummary,
    ProgressFn,
    _noop,
    content_hash,
    ingest_directory,
)
from mmrec.search import SearchResult, nearest_items
from mmrec.store import CatalogStore, vector_column

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
        self._extractors: list[Any] | None = None
        self._preset: str | None = None

    # -- extractors ---------------------------------------------------------------
    def _stored_preset(self) -> str | None:
        if CatalogStore.exists(self.path):
            return CatalogStore.open(self.path).meta().get("preset")
        return None

    def extractors(self, preset: str | None = None) -> list[Any]:
        """The extractor set: the given preset, else $MMREC_PRESET, the catalog's, or 'default'."""
        from mmrec.extractors import load_extractor_set

        name = preset or os.environ.get("MMREC_PRESET") or self._stored_preset() or DEFAULT_PRESET
        if self._extractors is None or self._preset != name:
            self._extractors = load_extractor_set(name, **self._load_kwargs)
            self._preset = name
        return self._extractors

    @staticmethod
    def _layout(extractors: list[Any]) -> FusionLayout:
        return FusionLayout.from_dims([(e.modality, e.preset, e.dim) for e in extractors])

    def _store(self, extractors: list[Any], create: bool) -> CatalogStore:
        layout = self._layout(extractors)
        if CatalogStore.exists(self.path):
            store = CatalogStore.open(self.path)
            store.check_layout(layout)
            return store
        if not create:
            return CatalogStore.open(self.path)  # raises CatalogNotFoundError with the hint
        return CatalogStore.create(self.path, layout, {"preset": self._preset})

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
               options: IngestOptions | None = None, progress: ProgressFn = _noop) -> IngestSummary:
        """Ingest every media file under directory (unchanged files are skipped)."""
        if not Path(directory).is_dir() and not Path(directory).is_file():
            raise ConfigError(f"{directory}: no such file or directory to ingest")
        extractors = self.extractors(preset)
        store = self._store(extractors, create=True)
        summary = ingest_directory(store, extractors, directory, options, progress)
        store.set_meta({"preset": self._preset, "extractors": [e.describe() for e in extractors]})
        return summary

    def search(self, *, text: str | None = None, file: str | Path | None = None,
               item: str | None = None, k: int = 10, modality: str = "all",
               weights: str | dict[str, float] | None = None, where: str | None = None,
               segments: bool = True, preset: str | None = None) -> SearchResult:
        """Items most similar to a text, a file or a catalogued item.

        Args:
            text / file / item: exactly one query. A catalogued file reuses its stored
                vectors and is excluded from the results; other files are embedded now.
            k: number of results.
            modality: "all" or one of visual/audio/text (only that block scores).
            weights: "visual=1,audio=0.5" or a dict; per query, no re-ingest needed.
            where: SQL filter on item columns, e.g. "duration > 60 AND kind = 'video'".
            segments: also find each hit's best-matching segment (start/end seconds).
        """
        if sum(x is not None for x in (text, file, item)) != 1:
            raise ConfigError("give exactly one of text=, file= or item=")
        if k <= 0:
            raise ConfigError(f"k must be positive, got {k}")
        store = CatalogStore.open(self.path)
        layout = store.layout
        w = weights if isinstance(weights, dict) else parse_weights(weights, layout.modalities)
        if modality != "all":
            layout.block(modality)
            w = {m: (w.get(m, 1.0) or 1.0) if m == modality else 0.0 for m in layout.modalities}
        notes: list[str] = []
        exclude: tuple[str, ...] = ()
        if text is not None:
            extractors = self.extractors(preset)
            self._check_fingerprints(store, extractors)
            vectors = {e.modality: e.embed_text([text])[0] for e in extractors if e.has_text_tower}
            notes += [f"{e.preset} runs on random weights: its {e.modality} scores are meaningless"
                      for e in extractors if e.is_random]
        else:
            row = store.find_item(item) if item is not None else self._catalogued(store, file)
            if item is not None and row is None:
                raise ConfigError(f"no item {item!r} in {self.path}: use an id from `mmrec query`"
                                  " output or a catalogued path")
            if row is not None:
                cols = {m: row[vector_column(m)] for m in layout.modalities}
                vectors = {m: None if v is None else np.asarray(v, np.float32) for m, v in cols.items()}
                exclude = (row["id"],)
            else:
                vectors = self._embed_file(store, Path(str(file)), preset)
        query = layout.query({m: v for m, v in vectors.items() if v is not None}, w)
        hits = nearest_items(store, query, k, where, exclude, segments)
        return SearchResult(hits, notes)

    def _catalogued(self, store: CatalogStore, file: str | Path | None) -> dict[str, Any] | None:
        path = Path(str(file))
        if not path.is_file():
            raise ConfigError(f"{path}: no such file to query with")
        row = store.find_item(str(path.resolve()))
        return row or store.find_item(content_hash(path))

    def _embed_file(self, store: CatalogStore, path: Path, preset: str | None) -> dict[str, Any]:
        from mmrec.extractors import MediaItem
        from mmrec.media import probe, read_text_meta

        extractors = self.extractors(preset)
        self._check_fingerprints(store, extractors)
        info = probe(path)
        media = MediaItem(str(path), info, read_text_meta(path, info))
        out: dict[str, Any] = {}
        for e in extractors:
            if e.applies_to(media):
                out[e.modality] = e.embed_media([media])[0].item_vector
        return out

    def stats(self) -> dict[str, Any]:
        """Counts by kind, segments, errors, extractors and fingerprints, storage size."""
        store = CatalogStore.open(self.path)
        meta = store.meta()
        size = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        return {**store.counts(), "extractors": meta.get("extractors", []),
                "preset": meta.get("preset"), "fusion": [b.__dict__ for b in store.layout.blocks],
                "storage_bytes": size, "path": str(self.path)}
