"""Ingest: reader (walk, skip unchanged, probe) -> mapper (extractors) -> writer (upserts).

Identity: an item's id is a content hash; (path, size, mtime) decides whether a file
is read again, the extractor fingerprints decide whether it is embedded again.
A bad file is recorded in the `errors` table and reported; it never stops the run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import MediaError
from mmrec.media import probe, read_text_meta
from mmrec.scan import iter_media_files
from mmrec.store import CatalogStore, ItemRecord, SegmentRecord

log = logging.getLogger(__name__)
HASH_CHUNK = 1 << 20


def content_hash(path: str | Path) -> str:
    """blake2b-128 of the file's bytes: the item id."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class IngestOptions:
    """How a directory is ingested (CLI flags map one to one)."""

    recursive: bool = True
    batch_files: int = 8
    prefetch: int = 2
    workers: int = 2
    write_batch: int = 16
    prune_missing: bool = True


@dataclass(frozen=True)
class FileFailure:
    path: str
    stage: str
    error: str
    message: str


@dataclass
class IngestSummary:
    """What a run did; `failed` lists every file that could not be ingested and why."""

    ingested: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    removed: int = 0
    segments: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    random_weights: list[str] = field(default_factory=list)


ProgressFn = Callable[[str, dict[str, Any]], None]


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


def _place(layout_block: Any, dim_total: int, vectors: np.ndarray) -> np.ndarray:
    """Segment vectors of one modality placed in the fused layout (zeros elsewhere)."""
    out = np.zeros((len(vectors), dim_total), dtype=np.float32)
    out[:, layout_block.offset : layout_block.offset + layout_block.dim] = vectors
    return out


def ingest_directory(
    store: CatalogStore,
    extractors: Sequence[Any],
    root: str | Path,
    options: IngestOptions | None = None,
    progress: ProgressFn = _noop,
) -> IngestSummary:
    """Ingest every media file under root into the store. See module docstring."""
    from mmrec.extractors import MediaItem, embed_files

    options = options or IngestOptions()
    t0 = time.perf_counter()
    summary = IngestSummary(random_weights=[e.preset for e in extractors if e.is_random])
    fingerprints = {e.modality: e.fingerprint for e in extractors}
    known = store.file_index()
    timings = {"read": 0.0, "embed": 0.0, "write": 0.0}

    # reader: walk, skip unchanged, probe
    t = time.perf_counter()
    files = [p.resolve() for p in iter_media_files(root, options.recursive)]
    todo: list[tuple[Path, str, Any]] = []
    for path in files:
        prev = known.get(str(path))
        try:
            st = path.stat()
            same_file = prev and prev["size"] == st.st_size and prev["mtime"] == st.st_mtime
            if same_file and _fingerprints_match(prev, fingerprints):
                summary.unchanged += 1
                continue
            item_id = content_hash(path)
            if prev and prev["id"] == item_id and _fingerprints_match(prev, fingerprints):
                summary.unchanged += 1  # touched but identical content
                continue
            todo.append((path, item_id, st))
        except OSError as e:
            summary.failed.append(FileFailure(str(path), "read", type(e).__name__, str(e)))
    progress("planned", {"total": len(todo), "unchanged": summary.unchanged})

    items: list[Any] = []
    meta: dict[str, tuple[str, Any]] = {}
    for path, item_id, st in todo:
        try:
            info = probe(path)
            text = read_text_meta(path, info)
        except MediaError as e:
            summary.failed.append(FileFailure(str(path), e.stage, type(e).__name__, e.reason))
            progress("failed", {"path": str(path), "message": e.reason})
            continue
        items.append(MediaItem(str(path), info, text))
        meta[str(path)] = (item_id, st)
    timings["read"] += time.perf_counter() - t

    # mapper -> writer
    layout = store.layout
    by_name = {e.name: e for e in extractors}
    pending_items: list[ItemRecord] = []
    pending_segs: list[SegmentRecord] = []

    def flush() -> None:
        t_w = time.perf_counter()
        store.write(pending_items, pending_segs)
        for rec in pending_items:
            store.clear_errors(rec.path)
        timings["write"] += time.perf_counter() - t_w
        pending_items.clear()
        pending_segs.clear()

    t_e = time.perf_counter()
    for result in embed_files(list(extractors), items, batch_files=options.batch_files,
                              prefetch=options.prefetch, workers=options.workers):
        item = result.item
        item_id, st = meta[item.path]
        vectors: dict[str, np.ndarray | None] = {}
        # Fingerprints of every extractor that did not fail (one that does not apply,
        # e.g. CLIP on an audio file, counts as done): a failed one reruns next time.
        done_fps = {e.modality: e.fingerprint for e in extractors if e.name not in result.errors}
        segs: list[SegmentRecord] = []
        for name, sv in result.vectors.items():
            ext = by_name[name]
            block = layout.block(ext.modality)
            vectors[ext.modality] = sv.item_vector
            placed = _place(block, layout.dim, sv.vectors)
            labels = sv.labels or ("",) * len(sv)
            segs += [SegmentRecord(item_id, ext.modality, k, float(sv.starts[k]), float(sv.ends[k]),
                                   labels[k] if k < len(labels) else "", placed[k])
                     for k in range(len(sv))]
        for name, err in result.errors.items():
            stage = getattr(err, "stage", "embed")
            msg = getattr(err, "reason", None) or str(err)
            summary.failed.append(FileFailure(item.path, f"{stage}:{name}", type(err).__name__, msg))
            progress("failed", {"path": item.path, "message": f"{name}: {msg}"})
        if not vectors:
            continue
        text = item.text
        rec = ItemRecord(
            id=item_id, path=item.path, size=st.st_size, mtime=st.st_mtime,
            duration=item.info.duration, kind=item.info.kind,
            title=text.title if text else Path(item.path).stem,
            text=" ".join(v for k, v in (text.fields().items() if text else []) if k != "title"),
            tags=list(text.tags) if text else [], vectors=vectors, fused=layout.fuse(vectors),
            fingerprints=done_fps,
        )
        pending_items.append(rec)
        pending_segs.extend(segs)
        summary.ingested.append(item.path)
        summary.segments += len(segs)
        progress("embedded", {"path": item.path, "segments": len(segs)})
        if len(pending_items) >= options.write_batch:
            flush()
    timings["embed"] += time.perf_counter() - t_e
    if pending_items:
        flush()
    timings["embed"] -= timings["write"]

    for f in summary.failed:
        store.record_error(f.path, f.stage, f.error, f.message)
    if options.prune_missing:
        summary.removed = _prune_missing(store, Path(root).resolve(), set(map(str, files)))
    summary.timings = timings
    summary.seconds = time.perf_counter() - t0
    return summary


def _fingerprints_match(prev: dict[str, Any], current: dict[str, str]) -> bool:
    import json

    try:
        stored = json.loads(prev.get("fingerprints") or "{}")
    except ValueError:
        return False
    return stored == current


def _prune_missing(store: CatalogStore, root: Path, present: set[str]) -> int:
    """Remove items under root whose file no longer exists (or is no longer found there)."""
    prefix = str(root).rstrip("/") + "/"
    gone = [p for p in store.file_index() if p.startswith(prefix) and p not in present
            and not Path(p).exists()]
    removed = 0
    for p in gone:
        removed += store.delete_where("path = '" + p.replace("'", "''") + "'")
    return removed
