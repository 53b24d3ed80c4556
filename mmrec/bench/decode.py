"""`decode` benchmark: sampled-frame and audio-window decoding throughput per worker count.

Video: every file's frames sampled as CLIP sees them (224x224 "cover", 1 fps, at most 64)
through mmrec.media.decode_video; audio: 10 s mono windows at 48 kHz through
iter_audio_windows. Files are spread over a thread pool (ffmpeg runs in subprocesses);
rates are frames (or windows) per second and the real-time factor (media seconds per
wall second).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mmrec.media import FramePolicy, decode_video, iter_audio_windows

from .common import Report, measure
from .library import media_library, probed

POLICY = FramePolicy(size=(224, 224), resize="cover", fps=1.0, max_frames=64)


def _video_job(files: list[Path], infos: dict, workers: int) -> tuple[int, float]:
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(lambda p: decode_video(p, POLICY, infos[p]), files))
    return sum(len(d.times) for d in done), sum(infos[p].duration or 0.0 for p in files)


def _audio_job(files: list[Path], infos: dict, workers: int) -> tuple[int, float]:
    def windows(p: Path) -> int:
        return sum(1 for _ in iter_audio_windows(p, 48_000, 10.0, infos[p]))

    with ThreadPoolExecutor(workers) as pool:
        counts = list(pool.map(windows, files))
    return sum(counts), sum(infos[p].duration or 0.0 for p in files)


def run(quick: bool, out: Path, device: str, library: Path | None = None) -> dict[str, Any]:
    """Decode the library with 1..n workers; write decode.json / decode.png under out."""
    rep = Report("decode", device, quick)
    lib = media_library(out, library, quick)
    infos = probed(lib)
    video = [p for p, i in infos.items() if i.has_video]
    audio = [p for p, i in infos.items() if i.has_audio]
    cpus = os.cpu_count() or 1
    workers = [1, 2] if quick else sorted({1, 2, 4, 8, cpus} & set(range(1, 2 * cpus + 1)))
    rep.params = {"library": str(lib), "video_files": len(video), "audio_files": len(audio),
                  "policy": {"size": list(POLICY.size), "fps": POLICY.fps, "max_frames": POLICY.max_frames},
                  "audio": {"sample_rate": 48_000, "window_s": 10.0}, "workers": workers}
    for kind, files, job, unit in (("video", video, _video_job, "frames"),
                                   ("audio", audio, _audio_job, "windows")):
        if not files:
            rep.notes.append(f"no {kind} files in {lib}")
            continue
        for w in workers:
            count, media_s = job(files, infos, w)
            t = measure(lambda files=files, job=job, w=w: job(files, infos, w), warmup=0,
                        repeat=1 if quick else 3)
            rep.rows.append({"kind": kind, "workers": w, "files": len(files), "unit": unit,
                             "count": count, "media_s": media_s, **t.as_dict(1.0, "s"),
                             "per_s": count / t.median, "realtime_x": media_s / t.median})
    cols = ["kind", "workers", "files", "unit", "per second", "real-time x", "median s"]
    table = [[r["kind"], r["workers"], r["files"], r["unit"], r["per_s"], r["realtime_x"], r["median_s"]]
             for r in rep.rows]
    title = "decoding throughput per worker count"
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), title)


def _plot(ax: Any, rows: list[dict]) -> None:
    for kind in ("video", "audio"):
        pts = sorted((r["workers"], r["per_s"]) for r in rows if r["kind"] == kind)
        if pts:
            unit = "frames/s" if kind == "video" else "windows/s"
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"{kind} {unit}")
    ax.set_xlabel("decoding threads")
    ax.set_ylabel("decoded per second")
