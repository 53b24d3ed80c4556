"""Text-source rows of the `extract` benchmark: speech (audio seconds per wall second, the
real-time factor) and on-screen text (frames per second), decoding included, on generated
media: continuous espeak-ng speech, and videos whose drawn text changes every frame read."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from .common import Report

SPEECH = ("the quick brown fox jumps over the lazy dog while the orchestra tunes its violins "
          "and the audience settles into their seats for the evening concert")


def _speech_clip(tmp: Path, seconds: float) -> Path:
    from mmrec.media import make_spoken_clip

    path = tmp / f"speech-{seconds:.0f}.wav"
    starts = [float(t) for t in range(0, int(seconds) - 9, 9)]  # a sentence every 9 s: no gaps
    make_spoken_clip(path, [(t, SPEECH) for t in starts], seconds, video=False)
    return path


def _text_video(tmp: Path, size: str, seconds: float) -> Path:
    """A video whose drawn text changes every 2 s (each sampled frame has new words)."""
    path = tmp / f"text-{size}.mp4"
    draw = ("drawtext=text='Revenue %{eif\\:trunc(t/2)\\:d} grew in region %{eif\\:trunc(t/2)+7\\:d}'"
            ":fontsize=h/12:fontcolor=black:x=w/20:y=h/3")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=white:s={size}:d={seconds}:r=10", "-vf", draw, "-pix_fmt", "yuv420p",
                    str(path)], check=True, timeout=120)
    return path


def source_rows(rep: Report, device: str, quick: bool, tmp: Path) -> None:
    """Append one row per source and input size; goal: speech >= 10x real time."""
    from mmrec.extractors import MediaItem, RuntimeOptions, source_class
    from mmrec.media import probe

    runtime = RuntimeOptions(device, None, None)
    speech = source_class("speech").from_config({}, runtime)
    clip = _speech_clip(tmp, 30.0 if quick else 120.0)
    item = MediaItem(str(clip), probe(clip))
    speech.read(item)  # the model loads on the first read
    t0 = time.perf_counter()
    transcript = speech.read(MediaItem(str(clip), item.info))
    wall = time.perf_counter() - t0
    audio_s = float(item.info.duration or 0.0)
    rep.rows.append(_row("speech (tiny.en)", "audio s", "int8" if device == "cpu" else "float16",
                         audio_s, wall, words=len(transcript.text.split())))
    rep.goal("speech >= 10x real time (tiny.en int8, CPU)", audio_s / wall >= 10 if device == "cpu" else None,
             f"{audio_s / wall:.1f}x real time on {audio_s:.0f} s of speech")
    screen = source_class("screen").from_config({"languages": ["eng"]}, runtime)
    for size in ("640x360",) if quick else ("640x360", "1280x720"):
        video = _text_video(tmp, size, 20.0)
        info = probe(video)
        frames = int(20.0 * screen.config.fps)
        t0 = time.perf_counter()
        read = screen.read(MediaItem(str(video), info))
        wall = time.perf_counter() - t0
        rep.rows.append(_row(f"screen ({size})", "frames", "eng", frames, wall, words=len(read.text.split())))


def _row(preset: str, unit: str, precision: str, n: float, wall: float, **extra: Any) -> dict[str, Any]:
    return {"preset": preset, "model": preset, "random_weights": False, "modality": "text", "unit": unit,
            "precision": precision, "batch": "-", "n": n, "median_s": wall, "items_per_s": n / wall,
            "decoding": "included", **extra}
