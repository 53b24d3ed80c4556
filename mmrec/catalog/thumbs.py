"""Poster thumbnails of items and segments: derived JPEG files beside the catalog's tables.

    <catalog>/_thumbs/<item id>/poster.jpg             the item's poster
    <catalog>/_thumbs/<item id>/<modality>-<index>.jpg  segment "<item id>:<modality>:<index>"

A video's poster is a frame at 10% of its duration (the first visual segment's middle
when the duration is unknown), a segment's the frame at its middle; an audio file's are
waveform pictures of the whole file and of each segment's window (mmrec.media.thumbs).
Ingest makes those of the files it embedded, `mmrec index` the missing ones of every
item, and `ensure_thumbnail` one on demand (the HTTP service). They are derived and
written atomically, so making them needs no writer lock; the folder of an item that
leaves the catalog is removed by the ingest that removes it (and by a full build).

Ids are checked before they become paths: an item id is the catalog's content hash
(32 lowercase hex digits, `content_hash`), a segment id is "<item id>:<modality>:<index>"
of that same item, so no request can name a file outside `_thumbs/<item id>/`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mmrec.catalog.store import CatalogStore, fs_path, sql_list
from mmrec.errors import ConfigError, MmrecError, printable
from mmrec.media import DEFAULT_THUMB_WIDTH, frame_thumbnails, waveform_thumbnails

log = logging.getLogger(__name__)

THUMBS_DIR = "_thumbs"
POSTER_NAME = "poster.jpg"
POSTER_AT = 0.10  # a video's poster: this fraction of its duration
DEFAULT_THUMB_WORKERS = 2  # ffmpeg processes at a time in build_thumbnails
_ITEM_ID = re.compile(r"[0-9a-f]{32}")  # content_hash(): blake2b-128, hex
_SEG_ID = re.compile(r"([0-9a-f]{32}):([a-z][a-z0-9_]{0,31}):(0|[1-9][0-9]{0,8})")
_CHUNK_IDS = 256  # item ids per segments query
_SCAN_BATCH = 8192
_SEG_COLUMNS = ["seg_id", "item_id", "modality", "start", "end"]

ThumbProgress = Callable[[int, int], None]  # (items done, items in all)


class ThumbnailIdError(ConfigError):
    """An item or segment id that is not in the catalog's format (or a segment id of
    another item): refused before it becomes a path (HTTP 400)."""


class ThumbnailNotFoundError(ConfigError, LookupError):
    """A well-formed item or segment id that the catalog does not hold (HTTP 404)."""


@dataclass(frozen=True)
class ThumbFailure:
    """A file whose thumbnails could not be made, and why."""

    item_id: str
    path: str
    reason: str
    missing: int  # thumbnails of this item still missing


@dataclass
class ThumbReport:
    """What build_thumbnails did: JPEGs made and kept, files that failed (with the
    reason), item folders removed (items no longer in the catalog)."""

    items: int = 0
    made: int = 0
    kept: int = 0
    failed: list[ThumbFailure] = field(default_factory=list)
    removed: int = 0
    seconds: float = 0.0
    stopped: bool = False  # should_stop() turned true: the rest are made later

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "made": self.made, "kept": self.kept,
                "failed": [f.__dict__ for f in self.failed], "removed": self.removed,
                "seconds": round(self.seconds, 3), "stopped": self.stopped}


# -- paths ----------------------------------------------------------------------------
def thumbs_root(catalog_dir: str | Path) -> Path:
    """`<catalog>/_thumbs`."""
    return Path(catalog_dir) / THUMBS_DIR


def check_item_id(item_id: str) -> str:
    """The id, if it is the catalog's format (32 lowercase hex digits); else ThumbnailIdError."""
    if not isinstance(item_id, str) or not _ITEM_ID.fullmatch(item_id):
        raise ThumbnailIdError(
            f"item id {printable(str(item_id))[:80]!r} is not a catalog id (32 lowercase hex "
            "digits, as `mmrec query --json` prints them)")
    return item_id


def segment_file_name(item_id: str, seg_id: str) -> str:
    """The file name of a segment's thumbnail ("visual-3.jpg" for "<id>:visual:3").

    Raises ThumbnailIdError unless seg_id is "<item_id>:<modality>:<index>" of this item.
    """
    check_item_id(item_id)
    m = _SEG_ID.fullmatch(seg_id) if isinstance(seg_id, str) else None
    if m is None:
        raise ThumbnailIdError(
            f"segment id {printable(str(seg_id))[:120]!r} is not \"<item id>:<modality>:<index>\"")
    if m.group(1) != item_id:
        raise ThumbnailIdError(f"segment {seg_id} belongs to item {m.group(1)}, not {item_id}")
    return f"{m.group(2)}-{m.group(3)}.jpg"


def thumb_path(catalog_dir: str | Path, item_id: str, seg_id: str | None = None) -> Path:
    """Where the thumbnail of an item (seg_id None: its poster) or of one of its segments
    lives; the file may not exist yet (see ensure_thumbnail). Raises ThumbnailIdError
    for an id that is not in the catalog's format."""
    folder = thumbs_root(catalog_dir) / check_item_id(item_id)
    return folder / (POSTER_NAME if seg_id is None else segment_file_name(item_id, seg_id))


# -- what to draw ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    id: str
    path: str  # file-system path
    kind: str
    duration: float | None


def _item(row: dict[str, Any]) -> _Item:
    d = row.get("duration")
    return _Item(row["id"], fs_path(row["path"]), row.get("kind") or "video",
                 float(d) if d is not None and math.isfinite(d) and d > 0 else None)


def _mid(start: float, end: float) -> float:
    return start if not math.isfinite(end) or end <= start else (start + end) / 2


def _poster_shot(item: _Item, first_visual: tuple[float, float] | None) -> tuple[float, float | None]:
    """(time, None) for a video poster; (0, None), the whole file, for a waveform."""
    if item.kind != "video":
        return (0.0, None)
    if item.duration:
        return (POSTER_AT * item.duration, None)
    return (_mid(*first_visual) if first_visual else 0.0, None)


def _segment_shot(item: _Item, start: float, end: float) -> tuple[float, float | None]:
    """(time, None) for a video segment (its middle); (start, end) for a waveform."""
    start = float(start) if start is not None and math.isfinite(start) else 0.0
    end = float(end) if end is not None and math.isfinite(end) else start
    if item.kind == "video":
        return (_mid(start, end), None)
    return (start, end)


def _make(item: _Item, wanted: Sequence[tuple[tuple[float, float | None], Path]], width: int) -> None:
    """Make these thumbnails of one file in one ffmpeg process (or a few); MediaError if not."""
    if item.kind == "video":
        frame_thumbnails(item.path, [(t, out) for (t, _), out in wanted], width=width,
                         duration=item.duration)
    else:
        waveform_thumbnails(item.path, [(s, e, out) for (s, e), out in wanted], width=width,
                            duration=item.duration)


# -- one on demand --------------------------------------------------------------------
def ensure_thumbnail(store: CatalogStore, item_id: str, seg_id: str | None = None, *,
                     width: int = DEFAULT_THUMB_WIDTH) -> Path:
    """The path of an existing thumbnail of an item (its poster) or of one of its
    segments, made first if it is missing.

    Raises:
        ThumbnailIdError: an id not in the catalog's format, or a segment of another item.
        ThumbnailNotFoundError: the catalog has no such item or segment.
        MediaError: the file could not be thumbnailed (moved, deleted, corrupt), naming it.
    """
    out = thumb_path(store.path, item_id, seg_id)
    if _nonempty(out):
        return out
    rows = store.get_items([item_id], ["id", "path", "kind", "duration"])
    if not rows:
        raise ThumbnailNotFoundError(f"no item {item_id} in {store.path}")
    item = _item(rows[0])
    if seg_id is None:
        first = None
        if item.kind == "video" and not item.duration:
            segs = _segments_where(store, f"item_id IN ({sql_list([item_id])}) AND modality = 'visual'")
            first = _first_visual(segs)
        shot = _poster_shot(item, first)
    else:
        # item_id first: it has a B-tree index once `mmrec index` ran, seg_id has none
        segs = _segments_where(store, f"item_id IN ({sql_list([item_id])}) "
                                      f"AND seg_id IN ({sql_list([seg_id])})")
        if not len(segs):
            raise ThumbnailNotFoundError(f"no segment {seg_id} in {store.path}")
        row = segs.slice(0, 1).to_pylist()[0]
        shot = _segment_shot(item, row["start"], row["end"])
    _make(item, [(shot, out)], width)
    return out


def _nonempty(p: Path) -> bool:
    try:
        return p.stat().st_size > 0
    except OSError:
        return False


def _segments_where(store: CatalogStore, predicate: str) -> pa.Table:
    return store.segments.search().where(predicate).select(_SEG_COLUMNS).limit(None).to_arrow()


def _first_visual(segs: pa.Table) -> tuple[float, float] | None:
    rows = [r for r in segs.to_pylist() if r["modality"] == "visual"]
    if not rows:
        return None
    r = min(rows, key=lambda r: r["start"])
    return (r["start"], r["end"])


# -- many at once ---------------------------------------------------------------------
def build_thumbnails(store: CatalogStore, catalog_dir: str | Path | None = None,
                     item_ids: Iterable[str] | None = None, progress: ThumbProgress | None = None,
                     *, refresh: bool = False, width: int = DEFAULT_THUMB_WIDTH,
                     workers: int = DEFAULT_THUMB_WORKERS,
                     should_stop: Callable[[], bool] = lambda: False) -> ThumbReport:
    """Make the missing thumbnails (poster and every segment) of these items, or of every
    item, with one ffmpeg process per file (`workers` files at a time).

    Args:
        catalog_dir: where `_thumbs/` lives (default: the store's directory).
        item_ids: only these items (unknown ids are skipped); None: every item, and the
            folders of items no longer in the catalog are removed.
        progress: called with (items done, items in all).
        refresh: make them again even where they exist, and remove the item's other
            segment thumbnails (for items just re-embedded: their segments may differ).
        should_stop: polled between files; True stops (report.stopped).

    A file that cannot be thumbnailed (moved, deleted, corrupt) is logged in one line
    and counted in report.failed; nothing is raised for it.
    """
    t0 = time.perf_counter()
    root = Path(catalog_dir) if catalog_dir is not None else store.path
    report = ThumbReport()
    ids = None if item_ids is None else sorted({i for i in item_ids if _ITEM_ID.fullmatch(i)})
    items = _load_items(store, ids)
    report.items = len(items)
    poster_planned: set[str] = set()
    pending: set[Future[tuple[int, ThumbFailure | None]]] = set()
    done = 0
    limit = 4 * max(1, workers)  # files queued at a time: the scan never runs far ahead

    def finished(n: int = 1) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, report.items), report.items)

    def collect(futures: Iterable[Future[tuple[int, ThumbFailure | None]]]) -> None:
        for f in list(futures):
            pending.discard(f)
            made, failure = f.result()
            report.made += made
            if failure is not None:
                report.failed.append(failure)
            finished()

    def plan(item: _Item, rows: list[dict[str, Any]], pool: ThreadPoolExecutor) -> None:
        wanted = _wanted(root, item, rows, item.id not in poster_planned,
                         refresh, complete=ids is not None, report=report)
        poster_planned.add(item.id)
        if not wanted:
            finished()
            return
        while len(pending) >= limit:
            collect(wait(pending, return_when=FIRST_COMPLETED).done)
        pending.add(pool.submit(_make_safely, item, wanted, width))
        collect([f for f in pending if f.done()])

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmrec-thumbs") as pool:
        for groups in _segment_groups(store, ids):
            for item_id, rows in groups.items():
                if should_stop():
                    report.stopped = True
                    break
                if item_id in items:  # else an orphan segment: its item row is gone
                    plan(items[item_id], rows, pool)
            if report.stopped:
                break
        for item_id, item in items.items():  # items without segments: the poster only
            if report.stopped or should_stop():
                report.stopped = True
                break
            if item_id not in poster_planned:
                plan(item, [], pool)
        collect(wait(pending).done)
    if ids is None and not report.stopped:
        report.removed = remove_orphan_thumbnails(store, root)
    report.seconds = time.perf_counter() - t0
    if report.made or report.failed:
        log.info("thumbnails: %d made, %d kept, %d files failed in %.1f s", report.made,
                 report.kept, len(report.failed), report.seconds)
    return report


def _wanted(root: Path, item: _Item, rows: list[dict[str, Any]], poster: bool, refresh: bool, *,
            complete: bool, report: ThumbReport) -> list[tuple[tuple[float, float | None], Path]]:
    """The thumbnails of one item still to make (those present are counted as kept).

    refresh: all of them; when `rows` are all the item's segments (complete), its other
    segment thumbnails (of an earlier embedding) are removed too."""
    folder = thumbs_root(root) / item.id
    try:
        present = {e.name for e in os.scandir(folder) if e.is_file()} if folder.is_dir() else set()
    except OSError:
        present = set()
    for name in [n for n in present if n.endswith(".tmp")]:
        present.discard(name)
        _remove_dead_temp(folder / name)
    wanted = []
    names = set()
    if poster:
        first = next(((r["start"], r["end"]) for r in sorted(rows, key=lambda r: r["start"])
                      if r["modality"] == "visual"), None)
        wanted.append((_poster_shot(item, first), folder / POSTER_NAME))
        names.add(POSTER_NAME)
    for r in rows:
        try:
            name = segment_file_name(item.id, r["seg_id"])
        except ThumbnailIdError:
            log.debug("skipping a segment id that is not the catalog's format: %r", r["seg_id"])
            continue
        names.add(name)
        wanted.append((_segment_shot(item, r["start"], r["end"]), folder / name))
    if refresh:
        for stale in (present - names) if complete else ():  # of an earlier embedding
            if stale.endswith(".jpg"):
                (folder / stale).unlink(missing_ok=True)
        return wanted
    missing = [w for w in wanted if w[1].name not in present or not _nonempty(w[1])]
    report.kept += len(wanted) - len(missing)
    return missing


def _remove_dead_temp(tmp: Path) -> None:
    """Remove a temporary file left by a killed process (its pid is in the name:
    `.<name>.<pid>-<random>.tmp`, see mmrec.media.thumbs)."""
    m = re.search(r"\.(\d+)-[0-9a-f]+\.tmp$", tmp.name)
    if m is None:
        return
    try:
        os.kill(int(m.group(1)), 0)
        return  # still running: its file is in the making
    except ProcessLookupError:
        tmp.unlink(missing_ok=True)
    except (PermissionError, OverflowError, ValueError):  # another user's, or no real pid
        return


def _make_safely(item: _Item, wanted: list[tuple[tuple[float, float | None], Path]],
                 width: int) -> tuple[int, ThumbFailure | None]:
    """(thumbnails made, failure or None) for one file; never raises for a bad file."""
    try:
        _make(item, wanted, width)
        return len(wanted), None
    except Exception as e:  # a bad file, an unwritable folder: counted, never raised
        if isinstance(e, OSError) and not isinstance(e, MmrecError):  # the _thumbs folder
            reason = f"cannot write thumbnails ({e.strerror or e}: {e.filename})"
        else:
            reason = getattr(e, "reason", None) or str(e) or type(e).__name__
        if not isinstance(e, (MmrecError, OSError)):
            log.debug("thumbnails of %s failed unexpectedly", printable(item.path), exc_info=True)
        made = sum(_nonempty(out) for _, out in wanted)
        log.warning("no thumbnails for %s: %s", printable(item.path), printable(reason))
        return made, ThumbFailure(item.id, item.path, str(reason), len(wanted) - made)


def _load_items(store: CatalogStore, ids: list[str] | None) -> dict[str, _Item]:
    cols = ["id", "path", "kind", "duration"]
    if ids is None:
        rows = store.columns(store.items, cols).to_pylist()
    else:
        rows = []
        for k in range(0, len(ids), _CHUNK_IDS):
            rows += store.items_by_id(ids[k:k + _CHUNK_IDS], cols).to_pylist()
    bad = [r["id"] for r in rows if not _ITEM_ID.fullmatch(r["id"] or "")]
    if bad:  # not made by content_hash (a synthetic catalog): no folder may be named by it
        log.debug("thumbnails: %d item ids are not content hashes (e.g. %r): skipped", len(bad), bad[0])
    return {r["id"]: _item(r) for r in rows if _ITEM_ID.fullmatch(r["id"] or "")}


def _segment_groups(store: CatalogStore, ids: list[str] | None) -> Iterator[dict[str, list[dict[str, Any]]]]:
    """Segments (no vectors) grouped by item: per chunk of ids (each item complete), or
    per scan batch of the whole table (an item may span two batches)."""
    if ids is None:
        q = store.segments.search().select(_SEG_COLUMNS).limit(None)
        tables: Iterable[pa.Table] = (pa.Table.from_batches([b]) for b in q.to_batches(_SCAN_BATCH))
    else:
        tables = (_segments_where(store, f"item_id IN ({sql_list(ids[k:k + _CHUNK_IDS])})")
                  for k in range(0, len(ids), _CHUNK_IDS))
    for table in tables:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in table.to_pylist():
            groups.setdefault(r["item_id"], []).append(r)
        yield groups


# -- cleaning up ----------------------------------------------------------------------
def remove_thumbnails(catalog_dir: str | Path, item_ids: Iterable[str]) -> int:
    """Remove the thumbnail folders of these items; returns how many were there."""
    removed = 0
    for item_id in item_ids:
        if not _ITEM_ID.fullmatch(item_id):
            continue
        folder = thumbs_root(catalog_dir) / item_id
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def prune_thumbnails(store: CatalogStore, item_ids: Iterable[str],
                     catalog_dir: str | Path | None = None) -> int:
    """Remove the folders of those of these items the catalog no longer holds (a pruned
    file, or the old content of a changed one; content embedded again keeps its id and
    its folder)."""
    root = Path(catalog_dir) if catalog_dir is not None else store.path
    candidates = sorted({i for i in item_ids if _ITEM_ID.fullmatch(i)
                         and (thumbs_root(root) / i).is_dir()})
    if not candidates:
        return 0
    present: set[str] = set()
    for k in range(0, len(candidates), _CHUNK_IDS):
        present |= set(store.items_by_id(candidates[k:k + _CHUNK_IDS], ["id"]).column("id").to_pylist())
    return remove_thumbnails(root, [i for i in candidates if i not in present])


def remove_orphan_thumbnails(store: CatalogStore, catalog_dir: str | Path | None = None) -> int:
    """Remove every `_thumbs/<id>` folder whose item is not in the catalog.

    The folders are listed before the ids are read: thumbnails are made only for items
    whose rows are committed, so a folder seen here belongs to an id read after it,
    even while another process ingests."""
    root = thumbs_root(catalog_dir if catalog_dir is not None else store.path)
    if not root.is_dir():
        return 0
    folders = [e.name for e in os.scandir(root)
               if e.is_dir(follow_symlinks=False) and _ITEM_ID.fullmatch(e.name)]
    if not folders:
        return 0
    ids = set(store.columns(store.items, ["id"]).column("id").to_pylist())
    return remove_thumbnails(root.parent, [f for f in folders if f not in ids])
