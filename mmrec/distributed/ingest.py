"""The Ray engine of ingest: the local engine's steps, spread over a Ray cluster.

    driver   walk + skip unchanged by (path, size, mtime)       plan_files, as locally
    tasks    hash + probe every file to read                     workers.hash_probe
    driver   unchanged by content, duplicates, failures          skip_known, as locally
    tasks    decode: each extractor's prepare() on the CPU       workers.decode
    actors   embed (one model load each, GPUs when there are),   workers.EmbedActor
             collect_file, segments -> a Lance fragment (lance-ray's writer)
    driver   commits every --write-every files: old segments deleted, the fragments
             appended, then the item rows upserted by id (the commit marker), as locally

Only the driver commits, under the catalog's writer lock. A fragment is part of the
catalog only once the driver has committed it, so a worker that dies (Ray retries its
task) or a killed driver leaves at most unreferenced files; the next run re-embeds what
was not committed, and the upserts by content hash make that idempotent.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mmrec.catalog import (
    CatalogStore,
    FileFailure,
    IngestOptions,
    IngestSummary,
    db_path,
    finish_ingest,
    kept_row,
    plan_files,
    skip_known,
)

from .runtime import RayOptions, Sizing, connected, import_ray, quiet_data, sizing, worker_errors
from .workers import EmbedActor, Hashed, Job, Outcome, SetSpec, decode, hash_probe, merge_summary

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, dict[str, Any]], None]
DECODE_MEMORY = 1 << 30  # bytes a decode task asks of its node
MAX_BLOCKS = 4096  # input blocks of a stage: enough to spread files, few enough to schedule


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


def ray_ingester(set_name: str | Callable[[], str], load: dict[str, Any] | None = None,
                 options: RayOptions | None = None) -> Callable[..., IngestSummary]:
    """ingest_directory's signature, run on Ray (set_name: the extractors' set, or a function
    giving it when the run starts; load: their batch_size and model_paths, which every worker
    builds its copy with)."""
    import_ray()  # the install hint now, before any model loads

    def run(store: CatalogStore, extractors: Sequence[Any], root: str | Path,
            ingest_options: IngestOptions | None = None, progress: ProgressFn = _noop,
            should_stop: Callable[[], bool] = lambda: False) -> IngestSummary:
        return ingest_directory_ray(store, extractors, root, ingest_options, progress, should_stop,
                                    set_name=set_name if isinstance(set_name, str) else set_name(),
                                    load=load, ray_options=options)

    return run


class _Commits:
    """The driver's writer: item records and the fragments of their segments, committed
    every `batch` files (whole embed batches) in the local engine's order."""

    def __init__(self, store: CatalogStore, batch: int, modalities: tuple[str, ...]) -> None:
        self.store, self.batch, self.modalities, self.seconds = store, batch, modalities, 0.0
        self.items: list[Any] = []
        self.fragments: list[Any] = []

    def add(self, items: list[Any], fragments: list[Any]) -> None:
        self.items += items
        self.fragments += fragments
        if len(self.items) >= self.batch:
            self.flush()

    def flush(self) -> None:
        import lance

        if not self.items:
            return
        t = time.perf_counter()
        self.store.delete_segments([i.id for i in self.items], self.modalities)
        if self.fragments:
            ds = self.store.segments.to_lance()
            lance.LanceDataset.commit(ds.uri, lance.LanceOperation.Append(self.fragments),
                                      read_version=ds.version)
        self.store.upsert_items(self.items)
        for rec in self.items:
            self.store.clear_errors(rec.path)
        self.seconds += time.perf_counter() - t
        self.items, self.fragments = [], []


def ingest_directory_ray(
    store: CatalogStore,
    extractors: Sequence[Any],
    root: str | Path,
    options: IngestOptions | None = None,
    progress: ProgressFn = _noop,
    should_stop: Callable[[], bool] = lambda: False,
    *,
    set_name: str,
    load: dict[str, Any] | None = None,
    ray_options: RayOptions | None = None,
) -> IngestSummary:
    """ingest_directory (same summary, progress events, skips, errors and resume) on Ray.

    Timings: scan, hash_probe (the hash + probe stage, wall), decode (decode tasks'
    busy seconds, summed), model (embed actors' busy seconds, summed), embed (the driver's
    wait for embedded batches), write (the driver's commits).
    """
    options = options or IngestOptions()
    t0 = time.perf_counter()
    summary = IngestSummary(random_weights=[e.preset for e in extractors if e.is_random])
    fingerprints = {e.modality: e.ingest_fingerprint for e in extractors}
    timings = {"scan": 0.0, "hash_probe": 0.0, "decode": 0.0, "model": 0.0, "embed": 0.0, "write": 0.0}
    plan = plan_files(store, root, options.recursive, fingerprints, summary)
    timings["scan"] = time.perf_counter() - t0
    progress("planned", {"total": len(plan.todo), "unchanged": summary.unchanged})

    def fail(path: str, stage: str, error: str, message: str, final: bool = True) -> None:
        summary.failed.append(FileFailure(path, stage, error, message))
        progress("failed", {"path": path, "message": message, "final": final})

    writer = _Commits(store, options.write_batch, tuple(e.modality for e in extractors))
    replaced: set[str] = set()
    if plan.todo:
        with connected((ray_options or RayOptions()).address) as ray, worker_errors(ray):
            quiet_data(ray)
            size = sizing(ray, ray_options or RayOptions())
            t = time.perf_counter()
            hashed = _hash_all(ray, [p for p, _ in plan.todo], should_stop)
            timings["hash_probe"] = time.perf_counter() - t
            if hashed is None:
                summary.interrupted = True
            else:
                jobs = _triage(store, plan, hashed, fingerprints, summary, progress, fail)
                spec = SetSpec.of(set_name, extractors, load or {})
                stages = _embed_stages(ray, store, spec, jobs, options, size)
                summary.interrupted = _consume(stages, plan, writer, summary, timings, replaced,
                                               progress, fail, should_stop)
    writer.flush()
    timings["write"] = writer.seconds
    finish_ingest(store, root, plan, summary, options, replaced)
    summary.timings = timings
    summary.seconds = time.perf_counter() - t0
    return summary


def _hash_all(ray: Any, paths: list[Path], should_stop: Callable[[], bool]) -> list[Hashed] | None:
    """Hash and probe the files in CPU tasks; None when asked to stop meanwhile."""
    ds = ray.data.from_items([{"i": n, "path": os.fsencode(str(p))} for n, p in enumerate(paths)],
                             override_num_blocks=min(len(paths), MAX_BLOCKS))
    out: list[Hashed | None] = [None] * len(paths)
    blocks = iter(ds.map_batches(hash_probe, batch_size=16, batch_format="pyarrow", num_cpus=1)
                  .iter_batches(batch_size=None, batch_format="pyarrow"))
    try:
        for block in blocks:
            for i, h in zip(block.column("i").to_pylist(), block.column("hashed").to_pylist(), strict=True):
                out[i] = pickle.loads(h)
            if should_stop():
                return None
    finally:
        _close(blocks)
    return [h for h in out if h is not None]


def _close(blocks: Iterator[Any]) -> None:
    """Stop a Ray Data stream that was not read to its end (its executor shuts down)."""
    close = getattr(blocks, "close", None)
    if close is not None:
        close()


def _triage(store: CatalogStore, plan: Any, hashed: list[Hashed], fingerprints: dict[str, str],
            summary: IngestSummary, progress: ProgressFn, fail: Callable[..., None]) -> list[Job]:
    """The local reader's decisions, in walk order: failures, unchanged contents and copies
    are settled here; the rest become jobs (with the row a partial run keeps)."""
    by_id = {r["id"]: p for p, r in plan.known.items()}
    jobs = []
    for (path, st), h in zip(plan.todo, hashed, strict=True):
        key = db_path(path)
        if h.item_id is None:
            fail(key, *h.failure)
            continue
        if skip_known(key, h.item_id, plan.known, by_id, fingerprints, summary, progress):
            continue
        if h.item is None:
            fail(key, *h.failure)
            continue
        by_id[h.item_id] = key
        jobs.append(Job(h.item, h.item_id, st, kept_row(store, plan.known.get(key), h.item_id, fingerprints)))
    return jobs


def _embed_stages(ray: Any, store: CatalogStore, spec: SetSpec, jobs: list[Job],
                  options: IngestOptions, size: Sizing) -> Iterator[Any]:
    """The decode tasks and the embed actor pool as one streaming Ray Dataset."""
    if not jobs:
        return iter(())
    segments = store.segments.to_lance()
    ds = ray.data.from_items([{"job": pickle.dumps(j)} for j in jobs],
                             override_num_blocks=min(len(jobs), MAX_BLOCKS))
    # memory: decoded frames and the CPU copy of the extractors; a resource request unlike
    # the actors' also keeps Ray Data from fusing decoding into them (it stays on CPU tasks).
    decoded = ds.map_batches(decode, batch_size=1, batch_format="pyarrow", num_cpus=1,
                             memory=DECODE_MEMORY, fn_kwargs={"spec": spec})
    embedded = decoded.map_batches(
        EmbedActor, batch_size=options.batch_files, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=size.workers), num_cpus=1, num_gpus=size.gpus,
        fn_constructor_kwargs={"spec": spec, "device": size.device, "layout": store.layout.to_json(),
                               "segments_uri": segments.uri, "schema": segments.schema,
                               "storage_version": segments.data_storage_version,
                               "group": options.write_batch})
    return iter(embedded.iter_batches(batch_size=None, batch_format="pyarrow"))


def _consume(stages: Iterator[Any], plan: Any, writer: _Commits, summary: IngestSummary,
             timings: dict[str, float], replaced: set[str], progress: ProgressFn,
             fail: Callable[..., None], should_stop: Callable[[], bool]) -> bool:
    """Replay each embedded group's outcomes on the driver and commit; True if stopped early."""
    pending: dict[str, list[dict[str, Any]]] = {}
    interrupted = False
    try:
        while not should_stop():
            t = time.perf_counter()
            block = next(stages, None)
            timings["embed"] += time.perf_counter() - t
            if block is None:
                break
            for row in block.to_pylist():
                parts = pending.setdefault(row["group"], [])
                parts.append(row)
                if len(parts) == row["n"]:  # a whole group: its fragments cover its files only
                    _apply(pending.pop(row["group"]), plan, writer, summary, timings, replaced,
                           progress, fail)
        else:
            interrupted = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        _close(stages)
    return interrupted


def _apply(group: list[dict[str, Any]], plan: Any, writer: _Commits, summary: IngestSummary,
           timings: dict[str, float], replaced: set[str], progress: ProgressFn,
           fail: Callable[..., None]) -> None:
    """One group of embedded files on the driver: collect_file's calls replayed, the records
    and fragments to the writer."""
    items, fragments = [], []
    for row in group:
        o: Outcome = pickle.loads(row["outcome"])
        fragments += [pickle.loads(f) for f in pickle.loads(row["fragments"])]
        timings["decode"] += o.decode_s
        timings["model"] += row["model_s"]
        prev = plan.known.get(db_path(o.path))
        if prev and prev["id"] != o.item_id:
            replaced.add(prev["id"])  # the path's old content: the upsert deletes its row
        for kind, args, kwargs in o.calls:
            if kind == "fail":
                fail(*args, **kwargs)
            else:
                progress(*args)
        merge_summary(summary, o.summary)
        if o.item is not None:
            items.append(o.item)
    writer.add(items, fragments)
