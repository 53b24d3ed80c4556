"""Embed many files with several extractors, decoding ahead on threads while the model runs.

Files go in groups of `batch_files`; worker threads call every extractor's prepare()
for up to `prefetch` groups ahead (a bounded queue), while the caller's thread runs
embed_prepared() on the current group, batched across its files. A failure is kept
per file and extractor: a batch that fails is retried file by file, so only the bad
file fails.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .base import Extractor, MediaItem, SegmentVectors

log = logging.getLogger(__name__)


@dataclass
class ItemResult:
    """One file's outcome: vectors and errors by extractor name, and what did not apply."""

    item: MediaItem
    vectors: dict[str, SegmentVectors] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    prepare_s: float = 0.0
    units: dict[str, int] = field(default_factory=dict)  # unit name ("frames") -> count
    transcripts: dict[str, Any] = field(default_factory=dict)  # text source name -> Transcript

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class _Prepared:
    item: MediaItem
    prepared: dict[str, Any]
    errors: dict[str, Exception]
    skipped: tuple[str, ...]
    seconds: float
    units: dict[str, int]


def _prepare_one(extractors: Sequence[Extractor], item: MediaItem) -> _Prepared:
    t0 = time.perf_counter()
    prepared: dict[str, Any] = {}
    errors: dict[str, Exception] = {}
    skipped = []
    units: dict[str, int] = {}
    for ex in extractors:
        try:
            if not ex.applies_to(item):
                skipped.append(ex.name)
                continue
            prepared[ex.name] = ex.prepare(item)
            units[ex.unit] = units.get(ex.unit, 0) + ex.work_units(prepared[ex.name])
        except Exception as e:  # kept per file; never stops the batch
            log.info("prepare failed for %s with %s: %s", item.path, ex.name, e)
            errors[ex.name] = e
    return _Prepared(item, prepared, errors, tuple(skipped), time.perf_counter() - t0, units)


def _embed_group(ex: Extractor, group: list[_Prepared]) -> None:
    """Run one extractor over a group; on failure retry file by file."""
    todo = [p for p in group if ex.name in p.prepared]
    if not todo:
        return
    try:
        outs = ex.embed_prepared([p.prepared[ex.name] for p in todo])
    except Exception as e:
        log.info("batched %s embedding failed (%s); retrying file by file", ex.name, e)
        for p in todo:
            try:
                p.prepared[ex.name] = ex.embed_prepared([p.prepared[ex.name]])[0]
            except Exception as e1:
                p.errors[ex.name] = e1
                del p.prepared[ex.name]
        return
    for p, out in zip(todo, outs, strict=True):
        p.prepared[ex.name] = out


def embed_files(
    extractors: Sequence[Extractor],
    items: Iterable[MediaItem],
    *,
    batch_files: int = 8,
    prefetch: int = 2,
    workers: int = 2,
    progress: Callable[[ItemResult], None] | None = None,
) -> Iterator[ItemResult]:
    """Embed items with every extractor that applies; yield one ItemResult per item, in order.

    Args:
        extractors: built extractors (see load_extractor_set).
        items: MediaItems (probed files); consumed lazily.
        batch_files: files per embed_prepared call (their frames/windows are batched).
        prefetch: groups decoded ahead of the one being embedded (bounds memory).
        workers: decoding threads (ffmpeg runs in subprocesses, so threads suffice).
        progress: called with each ItemResult as it is yielded.
    """
    if batch_files <= 0 or prefetch < 0 or workers <= 0:
        raise ValueError("batch_files and workers must be > 0 and prefetch >= 0")
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mmrec-prepare") as pool:
        pending: deque[list[Future[_Prepared]]] = deque()

        def submit_next() -> bool:
            group = list(islice(source, batch_files))
            if group:
                pending.append([pool.submit(_prepare_one, extractors, it) for it in group])
            return bool(group)

        for _ in range(prefetch + 1):
            if not submit_next():
                break
        try:
            while pending:
                futures = pending.popleft()
                submit_next()  # keep `prefetch` groups decoding while this one embeds
                group = [f.result() for f in futures]
                for ex in extractors:
                    _embed_group(ex, group)
                for p in group:
                    result = ItemResult(p.item, dict(p.prepared), p.errors, p.skipped, p.seconds, p.units,
                                        dict(p.item.transcripts))
                    if progress is not None:
                        progress(result)
                    yield result
        finally:
            for futures in pending:
                for f in futures:
                    f.cancel()
