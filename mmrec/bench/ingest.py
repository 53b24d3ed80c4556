"""`ingest` benchmark: end-to-end `mmrec.Catalog(path).ingest(dir, preset=...)`.

Files/s and media-hours per hour of ingest time (IngestSummary.seconds, which starts after
the models are loaded), and the stage breakdown from the
IngestSummary timings: decode runs on worker threads (its total is divided by the worker
count to compare with wall time), embed is the main thread's wait for each embedded file
(model time plus any wait for decoding), write is the LanceDB writer. On CUDA the GPU
utilisation is polled while ingest runs. A warm-up run, then each repeat ingests into a
fresh catalog.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from .common import Report
from .library import media_library, probed

STAGES = ("scan", "hash_probe", "decode", "embed", "write")


class GpuPoller:
    """Samples GPU utilisation (%) every `every` seconds on a thread while in a with-block."""

    def __init__(self, device: str, every: float = 0.05) -> None:
        self.samples: list[float] = []
        self.every = every
        self.device = device
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        import torch

        while not self._stop.wait(self.every):
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception:  # noqa: BLE001 - no NVML: utilisation is not measurable here
                return

    def __enter__(self) -> GpuPoller:
        if self.device.startswith("cuda"):
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def summary(self) -> dict[str, float] | None:
        if not self.samples:
            return None
        return {"mean_pct": sum(self.samples) / len(self.samples), "max_pct": max(self.samples),
                "samples": len(self.samples)}


REAL_RANDOM = "default-random"  # the default set's architectures, random where weights are absent


def _ingester(preset: str, device: str, lib: Path, tmp: Path) -> Any:
    """(catalog path, options) -> IngestSummary for a preset set, or for REAL_RANDOM: the
    real-size models of the `default` set (ViT-B-32, CLAP HTSAT, MiniLM) with random
    weights where the real ones are not on this machine (speed does not depend on them)."""
    from mmrec import Catalog

    if preset != REAL_RANDOM:
        return lambda path, options: Catalog(path, device=device).ingest(lib, preset=preset, options=options)
    from mmrec.catalog import CatalogStore, ingest_directory
    from mmrec.extractors import presets
    from mmrec.fusion import FusionLayout

    from .extract import load_set

    extractors = load_set(presets.get_set("default").presets, device, tmp)
    layout = FusionLayout.from_extractors(extractors)

    def ingest(path: Path, options: Any) -> Any:
        store = CatalogStore.create(path, layout, {"preset": REAL_RANDOM})
        return ingest_directory(store, extractors, lib, options)

    return ingest


def run(quick: bool, out: Path, device: str, library: Path | None = None,
        preset: str | None = None, engine: str = "local",
        ray_workers: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
    """Ingest the library (a warm-up run, then 1 or 3 timed runs); write ingest.json/.png.

    preset: an extractor set (default offline-tiny), or "default-random" for the default
    set's real-size architectures (random weights where the real ones are absent).
    engine "ray": the Ray engine at each of ray_workers (mmrec.bench.ingest_ray).
    """
    from mmrec.catalog import IngestOptions

    if engine == "ray":
        from .ingest_ray import run as run_ray

        return run_ray(quick, out, device, library, preset, ray_workers)

    rep = Report("ingest", device, quick)
    lib = media_library(out, library, quick)
    preset = preset or "offline-tiny"
    infos = probed(lib)
    media_s = sum(i.duration or 0.0 for i in infos.values())
    options = IngestOptions()
    rep.params = {"library": str(lib), "files": len(infos), "media_seconds": media_s, "preset": preset,
                  "workers": options.workers, "batch_files": options.batch_files}
    tmp = Path(tempfile.mkdtemp(prefix="mmrec-bench-ingest-"))
    try:
        ingest = _ingester(preset, device, lib, tmp)
        if not quick:  # --quick: one cold run, only to prove the harness works
            ingest(tmp / "warmup.lance", options)
        for i in range(1 if quick else 3):
            # summary.seconds starts after the models are loaded, so loading is not counted
            with GpuPoller(device) as gpu:
                s = ingest(tmp / f"run{i}.lance", options)
            rep.rows.append(_row(s, media_s, options.workers, gpu.summary()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    best = sorted(rep.rows, key=lambda r: r["seconds"])[len(rep.rows) // 2]
    rep.extra["median_run"] = best
    rep.notes.append(f"bottleneck: {best['bottleneck']} ({best['bottleneck_why']})")
    cols = ["run", "files", "seconds", "files/s", "media h/h", "decode/worker s", "embed s", "write s",
            "bottleneck", "GPU util %"]
    table = [[i, r["files"], r["seconds"], r["files_per_s"], r["media_hours_per_hour"],
              r["stages"]["decode_per_worker"], r["stages"]["embed"], r["stages"]["write"],
              r["bottleneck"], None if r["gpu"] is None else r["gpu"]["mean_pct"]]
             for i, r in enumerate(rep.rows)]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), f"ingest ({preset}) stage times")


def _row(s: Any, media_s: float, workers: int, gpu: dict | None) -> dict[str, Any]:
    """One run: rates, stages and which stage limited it."""
    t = {k: float(v) for k, v in s.timings.items()}
    stages = {k: t.get(k, 0.0) for k in STAGES if k in t}
    stages["decode_per_worker"] = t.get("decode", 0.0) / max(1, workers)
    stages.setdefault("embed", t.get("embed", 0.0))
    stages.setdefault("write", t.get("write", 0.0))
    if stages["write"] >= max(stages["embed"], stages["decode_per_worker"]):
        neck, why = "write", "the LanceDB writes take longest"
    elif stages["decode_per_worker"] >= 0.7 * stages["embed"]:
        neck, why = "decode", "the model mostly waits for decoded files"
    else:
        neck, why = "model", "decoding keeps ahead; embed time is model time"
    n = len(s.ingested)
    return {"files": n, "failed": len(s.failed), "segments": s.segments, "seconds": s.seconds,
            "files_per_s": n / s.seconds if s.seconds else None,
            "media_hours_per_hour": media_s / s.seconds if s.seconds else None,
            "timings": t, "stages": stages, "bottleneck": neck, "bottleneck_why": why, "gpu": gpu}


def _plot(ax: Any, rows: list[dict]) -> None:
    names = ["hash_probe", "decode_per_worker", "embed", "write"]
    bottom = [0.0] * len(rows)
    for name in names:
        vals = [r["stages"].get(name, 0.0) for r in rows]
        ax.bar(range(len(rows)), vals, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(rows)), [f"run {i}" for i in range(len(rows))])
    ax.set_ylabel("seconds (decode: thread time / workers)")
