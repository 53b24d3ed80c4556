"""`ingest` benchmark on Ray (`mmrec bench ingest --engine ray`): the same library at 1, 2...
workers, each a local Ray instance where a worker is one embed actor (one model copy)
plus one CPU for the decode tasks (num_cpus = 2 x workers).

Per run: files/s and media-hours per hour of the whole run (summary.seconds: the hash and
probe stage, worker start-up and model loads, decode, embed and the driver's commits), the
steady rate once the first group of files is stored, and per file the decode tasks' and
the actors' busy seconds. Those give each stage's capacity (workers / seconds per file):
the report names what bounds the run (start-up when it is most of it) and, after start-up,
the stage with the lower capacity. Groups of BATCH files, so that files arrive steadily.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import Report
from .library import media_library, probed

BATCH = 4  # files per embed batch and per commit in these runs


def run(quick: bool, out: Path, device: str, library: Path | None = None, preset: str | None = None,
        workers: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """Ingest the library with --engine ray at each worker count (a warm-up run first unless
    quick: it starts the decode processes, which keep their models); write ingest-ray.json/.png."""
    from mmrec.distributed import import_ray

    ray = import_ray()
    if ray.is_initialized():
        raise RuntimeError("bench ingest --engine ray starts its own Ray instances: run it without one")
    rep = Report("ingest-ray", device, quick)
    lib = media_library(out, library, quick)
    preset = preset or "offline-tiny"
    infos = probed(lib)
    media_s = sum(i.duration or 0.0 for i in infos.values())
    rep.params = {"library": str(lib), "files": len(infos), "media_seconds": media_s, "preset": preset,
                  "workers": list(workers), "cpu_count": os.cpu_count(), "cpus_per_worker": 2}
    tmp = Path(tempfile.mkdtemp(prefix="mmrec-bench-ingest-ray-"))
    try:
        for w in workers:
            ray.init(num_cpus=2 * w, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
            try:
                if not quick:
                    _ingest(lib, tmp / f"warmup{w}.lance", preset, device, w)
                s, stored = _ingest(lib, tmp / f"run{w}.lance", preset, device, w)
            finally:
                ray.shutdown()
            rep.rows.append(_row(s, media_s, w, stored))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for r in rep.rows:
        rep.notes.append(f"{r['workers']} worker(s): bound by {r['bottleneck']} ({r['bottleneck_why']})")
    if (os.cpu_count() or 1) < 2 * max(workers):
        rep.notes.append(f"this machine has {os.cpu_count()} cores: {max(workers)} workers share them, so "
                         "their figures show contention, not scaling (see docs/scale-out.md)")
    cols = ["workers", "files", "seconds", "files/s", "media h/h", "steady files/s", "first file s",
            "decode busy", "model busy", "write s", "bottleneck"]
    table = [[r["workers"], r["files"], r["seconds"], r["files_per_s"], r["media_hours_per_hour"],
              r["steady_files_per_s"], r["first_file_s"], r["busy"]["decode"], r["busy"]["model"],
              r["stages"]["write"], r["bottleneck"]] for r in rep.rows]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), f"ingest --engine ray ({preset})")


def _ingest(lib: Path, db: Path, preset: str, device: str, workers: int) -> tuple[Any, list[float]]:
    """One timed run, and when each file was stored (seconds after "planned")."""
    from mmrec import Catalog
    from mmrec.catalog import IngestOptions

    planned: list[float] = []
    stored: list[float] = []

    def progress(event: str, data: dict[str, Any]) -> None:
        if event == "planned":
            planned.append(time.perf_counter())
        elif event == "embedded":
            stored.append(time.perf_counter() - planned[0])

    options = IngestOptions(thumbnails=False, batch_files=BATCH, write_batch=BATCH)
    s = Catalog(db, device=device).ingest(lib, preset=preset, engine="ray", ray_workers=workers,
                                          options=options, progress=progress)
    return s, stored


def _steady(stored: list[float]) -> float | None:
    """Files/s from the first stored group to the last (start-up excluded): files arrive a
    commit group at a time, so the first group's files are not counted."""
    if len(stored) < 2 or stored[-1] - stored[0] < 1e-3:
        return None
    first = sum(1 for t in stored if t - stored[0] < 0.05)
    return (len(stored) - first) / (stored[-1] - stored[0]) if len(stored) > first else None


def _row(s: Any, media_s: float, workers: int, stored: list[float]) -> dict[str, Any]:
    """One run: rates, stages, busy shares and the bounding stage."""
    t = {k: float(v) for k, v in s.timings.items()}
    n = len(s.ingested)
    pipeline = max(t.get("embed", 0.0), 1e-9)  # the driver's wait on the decode + embed stream
    busy = {"decode": t.get("decode", 0.0) / (workers * pipeline),
            "model": t.get("model", 0.0) / (workers * pipeline)}
    per_file = {k: t.get(k, 0.0) / max(n, 1) for k in ("decode", "model")}
    capacity = {k: workers / v if v > 0 else None for k, v in per_file.items()}  # files/s
    first_s = stored[0] if stored else None
    steady = _steady(stored)
    after = min((k for k in capacity if capacity[k]), key=lambda k: capacity[k], default="decode")
    after_why = (f"{after} {per_file[after]:.2f} s per file on each of {workers} worker(s): at most "
                 f"{capacity[after] or 0:.2f} files/s")
    if first_s is not None and first_s > 0.5 * s.seconds:
        neck, why = "start-up", (f"the first files were stored after {first_s:.0f} s of {s.seconds:.0f} "
                                 f"(hashing, worker processes, model loads); after it, {after_why}")
    else:
        neck, why = after, after_why
    return {"workers": workers, "files": n, "failed": len(s.failed), "segments": s.segments,
            "seconds": s.seconds, "files_per_s": n / s.seconds if s.seconds else None,
            "media_hours_per_hour": media_s / s.seconds if s.seconds else None,
            "steady_files_per_s": steady, "first_file_s": first_s, "timings": t,
            "per_file_s": per_file, "capacity_files_per_s": capacity, "bound_after_startup": after,
            "stages": {k: t.get(k, 0.0) for k in ("scan", "hash_probe", "decode", "model", "embed", "write")},
            "busy": busy, "bottleneck": neck, "bottleneck_why": why, "gpu": None}


def _plot(ax: Any, rows: list[dict]) -> None:
    names = ["hash_probe", "embed", "write"]
    bottom = [0.0] * len(rows)
    for name in names:
        vals = [r["stages"].get(name, 0.0) for r in rows]
        ax.bar(range(len(rows)), vals, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(rows)), [f"{r['workers']} worker(s)" for r in rows])
    ax.set_ylabel("seconds (embed: the driver's wait on decode + embed)")
