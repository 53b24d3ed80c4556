"""Sampled video decoding: uint8 RGB frames at a fixed size, streamed in bounded chunks.

Sampling and scaling both run inside ffmpeg (fps or scene-change `select`, then
`scale`/`crop`), so Python only ever sees small frames. Frame times come from the
`showinfo` filter, so they are exact for every policy, scene sampling included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from mmrec.errors import ConfigError, DecodeError, NoMediaStreamError, TruncatedMediaError
from mmrec.media.probe import MediaInfo, ensure_unchanged, probe
from mmrec.media.runner import (
    INPUT_OPTIONS,
    INPUT_PLACEHOLDER,
    StreamingProcess,
    decode_timeout,
    find_tool,
    last_error_line,
    with_input,
)

ResizeMode = Literal["cover", "fit", "stretch"]
_PTS_TIME = re.compile(r"\bn:\s*(\d+).*?\bpts_time:\s*(-?[0-9.]+)")
# Lowest sampling rate handed to ffmpeg: a corrupt header announcing a duration of
# years would otherwise give a rate that prints as 0 and makes the fps filter fail.
_MIN_FPS = 1e-4


@dataclass(frozen=True)
class FramePolicy:
    """How frames are sampled from a video.

    Attributes:
        size: output (width, height) in pixels.
        resize: "cover" scales to fill then centre-crops (CLIP-style), "fit" letterboxes,
            "stretch" ignores the aspect ratio.
        fps: cap on sampled frames per second.
        max_frames: cap per file; the rate is lowered so the frames still span the
            whole file instead of stopping early. None for no cap.
        window_s: length of the time windows frames are grouped into.
        scene_threshold: if set (0..1, e.g. 0.3), sample on scene changes (plus the
            first frame), still no more often than `fps`.
        chunk_frames: frames per chunk handed to the caller (bounds memory).
    """

    size: tuple[int, int] = (224, 224)
    resize: ResizeMode = "cover"
    fps: float = 1.0
    max_frames: int | None = 64
    window_s: float = 5.0
    scene_threshold: float | None = None
    chunk_frames: int = 32

    def __post_init__(self) -> None:
        w, h = self.size
        if w <= 0 or h <= 0:
            raise ConfigError(f"FramePolicy.size must be positive, got {self.size}")
        if self.resize not in ("cover", "fit", "stretch"):
            raise ConfigError(f"FramePolicy.resize must be cover|fit|stretch, got {self.resize!r}")
        if self.fps <= 0:
            raise ConfigError(f"FramePolicy.fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames <= 0:
            raise ConfigError(f"FramePolicy.max_frames must be > 0 or None, got {self.max_frames}")
        if self.window_s <= 0:
            raise ConfigError(f"FramePolicy.window_s must be > 0, got {self.window_s}")
        if self.scene_threshold is not None and not 0 < self.scene_threshold < 1:
            raise ConfigError(
                f"FramePolicy.scene_threshold must be in (0, 1), got {self.scene_threshold}"
            )
        if self.chunk_frames <= 0:
            raise ConfigError(f"FramePolicy.chunk_frames must be > 0, got {self.chunk_frames}")

    def effective_fps(self, duration: float | None) -> float:
        """The sampling rate actually used: `fps`, lowered so `max_frames` span `duration`."""
        if self.max_frames is None or not duration:
            return self.fps
        return min(self.fps, self.max_frames / duration)


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive sampled frames: uint8 [n, height, width, 3] and their times in seconds."""

    frames: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class Window:
    """A time window [start, end) and the indices of the samples that fall in it."""

    index: int
    start: float
    end: float
    rows: np.ndarray


@dataclass(frozen=True)
class DecodedVideo:
    info: MediaInfo
    frames: np.ndarray
    times: np.ndarray
    windows: list[Window]


def group_windows(times: np.ndarray, window_s: float, duration: float | None) -> list[Window]:
    """Group sample times into fixed windows of window_s seconds; empty windows are dropped.

    The last window ends at the file's duration (when known), never past it.
    """
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0:
        return []
    ids = np.floor(np.maximum(times, 0.0) / window_s).astype(np.int64)
    windows = []
    for wid in np.unique(ids):
        start = float(wid * window_s)
        end = start + window_s
        if duration:
            end = min(end, max(duration, float(times[ids == wid].max())))
        windows.append(Window(int(wid), start, end, np.flatnonzero(ids == wid)))
    return windows


def _first_video(info: MediaInfo) -> int:
    """Absolute stream index of the first real video stream (cover art is skipped)."""
    if not info.video:
        raise NoMediaStreamError(info.path, "no video stream to decode (audio-only file)")
    return info.video[0].index


def _build_args(path: str, info: MediaInfo, policy: FramePolicy) -> tuple[list[str], float]:
    import ffmpeg  # lazy: keep `import mmrec` free of ffmpeg bindings

    index = _first_video(info)
    duration = info.video[0].duration or info.duration
    fps = max(policy.effective_fps(duration), _MIN_FPS)
    stream = ffmpeg.input(INPUT_PLACEHOLDER, **INPUT_OPTIONS)[str(index)]
    if policy.scene_threshold is not None:
        gap = 1.0 / fps
        expr = (
            f"(eq(n,0)+gt(scene,{policy.scene_threshold}))"
            f"*(isnan(prev_selected_t)+gte(t-prev_selected_t,{gap:.6f}))"
        )
        stream = stream.filter("select", expr)
    else:
        # The fps filter rounds the end of the input to its output grid, so a clip shorter
        # than half a sampling period (a one-frame video) would yield no frame at all;
        # eof_action=pass keeps its first frame. Longer clips keep the default, which
        # never adds a frame at t == duration.
        short = not duration or duration * fps < 1.0
        stream = stream.filter("fps", fps=f"{fps:.6f}", **({"eof_action": "pass"} if short else {}))
    w, h = policy.size
    if policy.resize == "cover":
        stream = stream.filter("scale", w, h, force_original_aspect_ratio="increase")
        stream = stream.filter("crop", w, h)
    elif policy.resize == "fit":
        stream = stream.filter("scale", w, h, force_original_aspect_ratio="decrease")
        stream = stream.filter("pad", w, h, "(ow-iw)/2", "(oh-ih)/2")
    else:
        stream = stream.filter("scale", w, h)
    stream = stream.filter("setsar", 1).filter("showinfo")
    out_kwargs: dict[str, object] = {"format": "rawvideo", "pix_fmt": "rgb24", "vsync": "passthrough"}
    if policy.max_frames is not None:
        out_kwargs["frames:v"] = policy.max_frames
    out = ffmpeg.output(stream, "pipe:", **out_kwargs).global_args(
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"
    )
    args = with_input(out.compile(cmd=find_tool("ffmpeg")), path)
    return args, fps


class _Times:
    """Frame times parsed from showinfo lines on the stderr thread."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.cond = threading.Condition()

    def on_line(self, line: str) -> bool:
        if "showinfo" not in line:
            return False
        m = _PTS_TIME.search(line)
        if m:
            try:
                value = float(m.group(2))
            except ValueError:  # "." or "1.2.3": keep the line count, use the nominal grid
                return True
            with self.cond:
                self.values.append(value)
                self.cond.notify_all()
        return True

    def wait_for(self, n: int, proc: StreamingProcess) -> list[float]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.values) >= n or proc.wait_stderr(0), timeout=10)
            return list(self.values)


def iter_frames(
    path: str | Path,
    policy: FramePolicy | None = None,
    info: MediaInfo | None = None,
    timeout: float | None = None,
) -> Iterator[FrameChunk]:
    """Stream sampled frames of a video file in chunks of at most policy.chunk_frames.

    Memory stays bounded by one chunk whatever the file's length or resolution:
    sampling and scaling run inside ffmpeg, Python only sees policy-sized frames.
    A video shorter than one sampling period (even a single frame) yields one frame;
    frame times increase and lie within the file, variable frame rate included.

    Raises:
        the probe() errors; NoMediaStreamError for an audio-only file; DecodeError when
        ffmpeg fails (an undecodable codec included) or no frame decodes;
        TruncatedMediaError when decoding stops well short of the announced duration;
        MediaNotFoundError / MediaChangedError when the file vanished or changed since
        it was probed; FfmpegTimeoutError when ffmpeg runs past `timeout` (default
        decode_timeout(duration)). Only MediaErrors, whatever the file holds.
    """
    policy = policy or FramePolicy()
    info = info or probe(path)
    args, fps = _build_args(str(path), info, policy)
    w, h = policy.size
    frame_bytes = w * h * 3
    times = _Times()
    count = 0
    last_time = 0.0
    with StreamingProcess(args, path, timeout or decode_timeout(info.duration), times.on_line) as proc:
        while True:
            data = proc.read(frame_bytes * policy.chunk_frames)
            n = len(data) // frame_bytes
            if n == 0:
                break
            frames = np.frombuffer(data[: n * frame_bytes], dtype=np.uint8).reshape(n, h, w, 3)
            seen = times.wait_for(count + n, proc)
            if len(seen) >= count + n:
                ts = np.asarray(seen[count : count + n], dtype=np.float64)
            else:  # showinfo lines missing: fall back to the nominal sampling grid
                ts = (np.arange(count, count + n) / fps).astype(np.float64)
            count += n
            last_time = float(ts[-1])
            yield FrameChunk(frames.copy(), ts)
        code = proc.finish()
        tail = proc.stderr_tail
    ensure_unchanged(info)
    if code != 0:
        reason = last_error_line(tail, path, f"ffmpeg exited with code {code}")
        raise DecodeError(path, f"video decoding failed ({reason})", tail)
    if count == 0:
        raise DecodeError(path, "no video frame could be decoded", tail)
    _check_coverage(path, info, policy, last_time + 1.0 / fps, tail)


def _check_coverage(
    path: str | Path, info: MediaInfo, policy: FramePolicy, covered: float, tail: str
) -> None:
    """Raise TruncatedMediaError when frames stop far short of the stream's duration."""
    duration = info.video[0].duration or info.duration
    if policy.scene_threshold is not None or not duration:
        return
    if covered < 0.9 * duration - 1.0:
        raise TruncatedMediaError(
            path,
            f"video decodes only to {covered:.1f}s of the announced {duration:.1f}s "
            "(truncated or corrupt file)",
            tail,
        )


def decode_video(
    path: str | Path,
    policy: FramePolicy | None = None,
    info: MediaInfo | None = None,
    timeout: float | None = None,
) -> DecodedVideo:
    """All sampled frames of a file (bounded by policy.max_frames), grouped into windows.

    Raises the iter_frames() errors; never returns zero frames.
    """
    policy = policy or FramePolicy()
    info = info or probe(path)
    chunks = list(iter_frames(path, policy, info, timeout))
    frames = np.concatenate([c.frames for c in chunks])
    times = np.concatenate([c.times for c in chunks])
    return DecodedVideo(info, frames, times, group_windows(times, policy.window_s, info.duration))
