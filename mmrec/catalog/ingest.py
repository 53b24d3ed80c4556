"""Ingest: reader (walk, skip unchanged, probe) -> mapper (extractors) -> writer (upserts).

Identity: an item's id is a content hash; (path, size, mtime) decides whether a file
is read again, the extractor fingerprints decide whether it is embedded again.
A bad file is recorded in the `errors` table and reported; it never stops the run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.catalog.scan import iter_media_files
from mmrec.catalog.store import CatalogStore, ItemRecord, SegmentRecord, db_path, fs_path, vector_column
from mmrec.catalog.thumbs import ThumbReport, prune_thumbnails
from mmrec.errors import MediaError
from mmrec.media import probe, read_text_meta

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
    write_batch: int = 16  # files per commit: a kill loses at most this many
    prune_missing: bool = True
    thumbnails: bool = True  # posters of the files embedded (Catalog.ingest, mmrec.catalog.thumbs)
    # text sources of the set to run ("speech", "screen"): None = all the set names, () = none
    sources: tuple[str, ...] | None = None


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
    item_ids: list[str] = field(default_factory=list)  # the ids of `ingested`, in order
    unchanged: int = 0
    failed: list[FileFailure] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, same bytes as path)
    removed: int = 0
    segments: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    random_weights: list[str] = field(default_factory=list)
    interrupted: bool = False
    thumbs: ThumbReport | None = None  # set by Catalog.ingest when it made thumbnails


ProgressFn = Callable[[str, dict[str, Any]], None]


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


def _place(layout_block: Any, dim_total: int, vectors: np.ndarray) -> np.ndarray:
    """Segment vectors of one modality placed in the fused layout (zeros elsewhere)."""
    out = np.zeros((len(vectors), dim_total), dtype=np.float32)
    out[:, layout_block.offset : layout_block.offset + layout_block.dim] = vectors
    return out


@dataclass
class _Plan:
    """The reader's plan: every media file found, and those that need (re)reading."""

    files: list[Path]
    todo: list[tuple[Path, os.stat_result]]
    known: dict[str, dict[str, Any]]  # the store's file index when the run started


def plan_files(store: CatalogStore, root: str | Path, recursive: bool, fingerprints: dict[str, str],
               summary: IngestSummary) -> _Plan:
    """Walk root; a file whose (path, size, mtime) and fingerprints match is unchanged."""
    known = store.file_index()
    files = [p.resolve() for p in iter_media_files(root, recursive)]
    todo = []
    for path in files:
        try:
            st = path.stat()
        except OSError as e:
            summary.failed.append(FileFailure(db_path(path), "read", type(e).__name__, _os_reason(e)))
            continue
        prev = known.get(db_path(path))
        if prev and prev["size"] == st.st_size and prev["mtime"] == st.st_mtime \
                and _fingerprints_match(prev, fingerprints):
            summary.unchanged += 1
        else:
            todo.append((path, st))
    return _Plan(files, todo, known)


def _os_reason(e: OSError) -> str:
    return e.strerror or str(e)


class _Writer:
    """Batches item and segment records into upserts; times the writes."""

    def __init__(self, store: CatalogStore, batch: int, modalities: tuple[str, ...]) -> None:
        self.store, self.batch, self.seconds, self.modalities = store, batch, 0.0, modalities
        self.items: list[ItemRecord] = []
        self.segments: list[SegmentRecord] = []

    def add(self, item: ItemRecord, segments: list[SegmentRecord]) -> None:
        self.items.append(item)
        self.segments.extend(segments)
        if len(self.items) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.items:
            return
        t = time.perf_counter()
        self.store.write(self.items, self.segments, self.modalities)
        for rec in self.items:
            self.store.clear_errors(rec.path)
        self.seconds += time.perf_counter() - t
        self.items, self.segments = [], []


def ingest_directory(
    store: CatalogStore,
    extractors: Sequence[Any],
    root: str | Path,
    options: IngestOptions | None = None,
    progress: ProgressFn = _noop,
    should_stop: Callable[[], bool] = lambda: False,
) -> IngestSummary:
    """Ingest every media file under root into the store. See module docstring.

    Progress events: "planned" {total, unchanged}, then per file one of "embedded"
    {path, segments, units}, "unchanged" {path}, "duplicate" {path, of}, "failed" {path, message, final=True}
    or "dropped" {path}; "failed" with final=False is one extractor's failure on a file
    that still gets "embedded" (other extractors worked) or "dropped".
    When should_stop() turns true (the CLI's first Ctrl-C), or on KeyboardInterrupt, the
    run stops after the file in hand: what was embedded is written, nothing is pruned,
    and summary.interrupted is set; a rerun resumes (stored files are skipped).
    """
    from mmrec.extractors import MediaItem, embed_files

    options = options or IngestOptions()
    t0 = time.perf_counter()
    summary = IngestSummary(random_weights=[e.preset for e in extractors if e.is_random])
    fingerprints = {e.modality: e.ingest_fingerprint for e in extractors}
    timings = {"scan": 0.0, "hash_probe": 0.0, "decode": 0.0, "embed": 0.0, "write": 0.0}
    plan = plan_files(store, root, options.recursive, fingerprints, summary)
    known = plan.known
    timings["scan"] = time.perf_counter() - t0
    progress("planned", {"total": len(plan.todo), "unchanged": summary.unchanged})

    ids: dict[str, tuple[str, os.stat_result]] = {}
    by_id = {r["id"]: p for p, r in known.items()}  # content -> the path it is stored under
    replaced: set[str] = set()  # ids whose rows this run may delete (their thumbnails go too)

    def fail(path: str, stage: str, error: str, message: str, final: bool = True) -> None:
        summary.failed.append(FileFailure(path, stage, error, message))
        progress("failed", {"path": path, "message": message, "final": final})

    def reader() -> Iterator[Any]:
        """Hash and probe lazily, so embedding starts at once and progress moves."""
        for path, st in plan.todo:
            t = time.perf_counter()
            try:
                item_id = content_hash(path)
                key = db_path(path)
                if skip_known(key, item_id, known, by_id, fingerprints, summary, progress):
                    continue
                info = probe(path)
                text = read_text_meta(path, info)
            except MediaError as e:
                fail(db_path(path), e.stage, type(e).__name__, e.reason)
                continue
            except OSError as e:  # vanished or unreadable between scan and read
                fail(db_path(path), "read", type(e).__name__, _os_reason(e))
                continue
            finally:
                timings["hash_probe"] += time.perf_counter() - t
            ids[str(path)] = (item_id, st)
            by_id[item_id] = key
            yield MediaItem(str(path), info, text)

    writer = _Writer(store, options.write_batch, tuple(e.modality for e in extractors))
    results = embed_files(list(extractors), reader(), batch_files=options.batch_files,
                          prefetch=options.prefetch, workers=options.workers)
    try:
        while not should_stop():
            t = time.perf_counter()
            result = next(results, None)
            timings["embed"] += time.perf_counter() - t
            if result is None:
                break
            timings["decode"] += result.prepare_s
            item_id, st = ids.pop(result.item.path)
            prev = known.get(db_path(result.item.path))
            if prev and prev["id"] != item_id:
                replaced.add(prev["id"])  # the path's old content: store.write deletes its row
            kept = kept_row(store, prev, item_id, fingerprints)
            collect_file(result, item_id, st, store.layout, extractors, kept, writer, summary, fail,
                         progress)
        else:
            summary.interrupted = True
    except KeyboardInterrupt:
        summary.interrupted = True
    results.close()
    writer.flush()
    timings["write"] = writer.seconds
    finish_ingest(store, root, plan, summary, options, replaced)
    summary.timings = timings
    summary.seconds = time.perf_counter() - t0
    return summary


def skip_known(key: str, item_id: str, known: dict[str, dict[str, Any]], by_id: dict[str, str],
               fingerprints: dict[str, str], summary: IngestSummary, progress: ProgressFn) -> bool:
    """Whether a hashed file needs no embedding (counted and reported here): its stored row
    has these bytes and fingerprints, or another existing path holds the same bytes."""
    prev = known.get(key)
    if prev and prev["id"] == item_id and _fingerprints_match(prev, fingerprints):
        summary.unchanged += 1  # touched, but the same bytes
        progress("unchanged", {"path": key})
        return True
    twin = by_id.get(item_id)
    if twin is not None and twin != key and Path(fs_path(twin)).exists():
        # One item per content: a copy is reported, not embedded twice.
        summary.duplicates.append((key, twin))
        progress("duplicate", {"path": key, "of": twin})
        return True
    return False


def finish_ingest(store: CatalogStore, root: str | Path, plan: _Plan, summary: IngestSummary,
                  options: IngestOptions, replaced: set[str]) -> None:
    """After the last write (either engine): store the failures, prune files gone from root
    and orphan segments (not after an interruption), drop thumbnails of ids no longer stored."""
    for f in summary.failed:
        store.record_error(f.path, f.stage, f.error, f.message)
    if options.prune_missing and not summary.interrupted:
        present = {db_path(f) for f in plan.files}
        summary.removed, pruned = _prune_missing(store, Path(root).resolve(), present)
        replaced |= pruned
    if not summary.interrupted:
        store.delete_orphan_segments()  # left by a run killed between its two writes
    prune_thumbnails(store, replaced)  # those no longer in the catalog (an id embedded again stays)


def kept_row(store: CatalogStore, prev: dict[str, Any] | None, item_id: str,
              running: dict[str, str]) -> dict[str, Any] | None:
    """The stored row of the same content, when this run embeds only some modalities
    (--extractors): the others' vectors and fingerprints are kept, not lost."""
    if prev is None or prev["id"] != item_id:
        return None
    if not set(_stored_fingerprints(prev)) - set(running):
        return None
    rows = store.get_items([item_id])
    return rows[0] if rows else None


def collect_file(result: Any, item_id: str, st: os.stat_result, layout: Any, extractors: Sequence[Any],
                 kept: dict[str, Any] | None, writer: Any, summary: IngestSummary,
                 fail: Callable[..., None], progress: ProgressFn) -> None:
    """One file's extractor results (plus kept modalities) -> an item record and segments,
    handed to writer.add (both engines: mmrec.distributed runs it on its embed workers)."""
    item = result.item
    by_name = {e.name: e for e in extractors}
    vectors: dict[str, np.ndarray | None] = {}
    # Fingerprints of every extractor that did not fail (one that does not apply,
    # e.g. CLIP on an audio file, counts as done): a failed one reruns next time.
    done_fps = {e.modality: e.ingest_fingerprint for e in extractors if e.name not in result.errors}
    segs: list[SegmentRecord] = []
    for name, sv in result.vectors.items():
        ext = by_name[name]
        block = layout.block(ext.modality)
        vectors[ext.modality] = sv.item_vector
        placed = _place(block, layout.dim, sv.vectors)
        labels = sv.labels or ("",) * len(sv)
        segs += [SegmentRecord(item_id, ext.modality, k, float(sv.starts[k]), float(sv.ends[k]),
                               labels[k] if k < len(labels) else "", placed[k],
                               sv.texts[k] if k < len(sv.texts) else None)
                 for k in range(len(sv))]
    for name, err in result.errors.items():
        stage = getattr(err, "stage", "embed")
        msg = getattr(err, "reason", None) or str(err)
        fail(db_path(item.path), f"{stage}:{name}", type(err).__name__, f"{name}: {msg}", final=False)
    if not vectors:
        progress("dropped", {"path": db_path(item.path)})  # every extractor failed: nothing to store
        return
    if kept is not None:
        running = {e.modality for e in extractors}
        for m in layout.modalities:
            if m not in running and kept.get(vector_column(m)) is not None:
                vectors[m] = np.asarray(kept[vector_column(m)], np.float32)
        done_fps = {**{m: fp for m, fp in _stored_fingerprints(kept).items() if m not in running},
                    **done_fps}
    text = item.text
    rec = ItemRecord(
        id=item_id, path=db_path(item.path), size=st.st_size, mtime=st.st_mtime,
        duration=item.info.duration, kind=item.info.kind,
        title=text.title if text else Path(item.path).stem,
        text=" ".join(v for k, v in (text.fields().items() if text else []) if k != "title"),
        tags=list(text.tags) if text else [], vectors=vectors, fused=layout.fuse(vectors),
        fingerprints=done_fps, **_transcript_columns(result.transcripts),
    )
    writer.add(rec, segs)
    summary.ingested.append(db_path(item.path))
    summary.item_ids.append(item_id)
    summary.segments += len(segs)
    progress("embedded", {"path": db_path(item.path), "segments": len(segs), "units": dict(result.units)})


def _transcript_columns(transcripts: dict[str, Any]) -> dict[str, Any]:
    """The item columns of what the text sources read (None where a source did not run)."""
    speech, screen = transcripts.get("speech"), transcripts.get("screen")
    return {"transcript": None if speech is None else speech.text,
            "language": None if speech is None else speech.language,
            "screen_text": None if screen is None else screen.text}


def _stored_fingerprints(prev: dict[str, Any]) -> dict[str, str]:
    try:
        return json.loads(prev.get("fingerprints") or "{}")
    except ValueError:
        return {}


def _fingerprints_match(prev: dict[str, Any], current: dict[str, str]) -> bool:
    """Whether every extractor of this run already embedded the stored row."""
    stored = _stored_fingerprints(prev)
    return all(stored.get(m) == fp for m, fp in current.items())


def _prune_missing(store: CatalogStore, root: Path, present: set[str]) -> tuple[int, set[str]]:
    """Remove items under root whose file no longer exists (or is no longer found there);
    returns how many, and their ids."""
    prefix = db_path(root).rstrip("/") + "/"
    index = store.file_index()
    gone = [p for p in index if p.startswith(prefix) and p not in present
            and not Path(fs_path(p)).exists()]
    removed = 0
    for p in gone:
        removed += store.delete_where("path = '" + p.replace("'", "''") + "'")
    return removed, {index[p]["id"] for p in gone}
