"""Small JPEG posters made with ffmpeg: a video frame at a time, or an audio waveform.

One ffmpeg process serves many posters of one file: each poster is its own input
(`-ss T -i file`, a fast seek to the keyframe before T, then an exact decode up to T)
mapped to its own output, in batches of at most MAX_INPUTS_PER_RUN inputs, so a file
with a dozen segments costs one process instead of a dozen, and a long file is never
decoded from the start for a late frame. Every poster is written under a temporary name
in the destination folder and moved into place with os.replace, so a reader sees either
no file or a whole JPEG.

    frame_thumbnails("clip.mp4", [(2.5, "a.jpg"), (7.5, "b.jpg")], width=320)
    waveform_thumbnails("song.flac", [(0.0, None, "poster.jpg"), (10.0, 20.0, "w1.jpg")])
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from mmrec.errors import ConfigError, DecodeError
from mmrec.media.probe import _stat_for_reading
from mmrec.media.runner import decode_timeout, find_tool, input_args, input_url, last_error_line, run_to_end

log = logging.getLogger(__name__)

DEFAULT_THUMB_WIDTH = 320
# JPEG quality as ffmpeg's mjpeg qscale (2 best .. 31 worst): 4 gives ~10-20 KB at 320 px.
THUMB_QSCALE = 4
# Inputs (posters) per ffmpeg process: each open input holds a decoder, so this bounds
# the memory of one process on a long, high-resolution file.
MAX_INPUTS_PER_RUN = 12
WAVE_COLOR = "0x6ab0ff"
# A frame asked for at or past the end of the stream comes out empty: ask a little earlier.
_END_MARGIN_S = 0.1

FrameShot = tuple[float, str | os.PathLike[str]]  # (time in seconds, output file)
WaveShot = tuple[float, float | None, str | os.PathLike[str]]  # (start, end or None, output file)


def wave_height(width: int) -> int:
    """Height of a waveform poster: the 16:9 box of `width`, even."""
    return max(2, int(width * 9 / 16) // 2 * 2)


def frame_thumbnails(path: str | os.PathLike[str], shots: Sequence[FrameShot], *,
                     width: int = DEFAULT_THUMB_WIDTH, duration: float | None = None,
                     timeout: float | None = None) -> list[Path]:
    """JPEG frames of a video file: one per (time, output), scaled to `width` pixels wide
    (display aspect ratio kept, rotation applied, height even). Cover art is never used.

    `duration` (the video's, if known) keeps times inside the file; a time past the last
    frame falls back to the first frame. Returns the outputs, all written.

    Raises:
        MediaNotFoundError / MediaPermissionError (no such file, unreadable), DecodeError
        (ffmpeg failed, no video stream, no frame), FfmpegTimeoutError, ConfigError for
        a bad width. An output folder that cannot be written raises OSError.
    """
    _check_width(width)
    jobs = [(_clamp(float(t), duration), Path(out)) for t, out in shots]
    return _run_all(path, jobs, lambda batch: _frame_args(path, batch, width),
                    fallback=lambda key: 0.0, duration=duration, timeout=timeout, what="frame")


def waveform_thumbnails(path: str | os.PathLike[str], shots: Sequence[WaveShot], *,
                        width: int = DEFAULT_THUMB_WIDTH, duration: float | None = None,
                        timeout: float | None = None) -> list[Path]:
    """JPEG waveform pictures (ffmpeg `showwavespic`) of time windows of a file's first
    audio stream: one per (start, end, output), `width` x wave_height(width) pixels; end
    None runs to the end of the file. A window past the end falls back to the whole file.

    Raises the frame_thumbnails() errors (DecodeError when there is no audio stream).
    """
    _check_width(width)
    jobs = []
    for start, end, out in shots:
        s = float(start)
        s = round(s, 3) if math.isfinite(s) and s > 0 else 0.0
        if duration and s >= duration:
            s = round(max(0.0, duration - 1.0), 3)  # past the end: the last second
        e = None if end is None else float(end)
        if e is not None and (not math.isfinite(e) or e <= s):
            e = s + 1.0  # an instant (a zero-length window): the second from there
        if e is not None and duration and e >= duration:
            e = None  # to the end: windows that reach the end share one picture
        jobs.append(((s, None if e is None else round(e, 3)), Path(out)))
    return _run_all(path, jobs, lambda batch: _wave_args(path, batch, width),
                    fallback=lambda key: (0.0, None), duration=duration, timeout=timeout,
                    what="waveform")


def _check_width(width: int) -> None:
    if isinstance(width, bool) or not isinstance(width, int) or not 16 <= width <= 4096:
        raise ConfigError(f"thumbnail width must be a whole number of pixels in 16..4096, got {width!r}")


def _clamp(t: float, duration: float | None) -> float:
    if not math.isfinite(t) or t < 0:
        t = 0.0
    if duration and duration > 0:
        t = min(t, max(0.0, duration - _END_MARGIN_S))
    return round(t, 3)


def _scale(width: int) -> str:
    # The display aspect ratio (dar) counts the sample aspect ratio of anamorphic video;
    # ffmpeg has already applied any rotation (autorotate) before this filter.
    return f"scale={width}:'max(2,trunc(ow/dar/2)*2)',setsar=1"


def _output(out: Path) -> list[str]:
    return ["-frames:v", "1", "-q:v", str(THUMB_QSCALE), "-f", "mjpeg", input_url(out)]


def _frame_args(path: str | os.PathLike[str], batch: list[tuple[float, Path]], width: int) -> list[str]:
    args = [find_tool("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    for t, _ in batch:
        args += [*input_args(), "-ss", f"{t:.3f}", "-i", input_url(path)]
    for k, (_, tmp) in enumerate(batch):
        # V: a video stream that is not an attached picture (cover art).
        args += ["-map", f"{k}:V:0", "-vf", _scale(width), *_output(tmp)]
    return args


def _wave_args(path: str | os.PathLike[str], batch: list[tuple[tuple[float, float | None], Path]],
               width: int) -> list[str]:
    args = [find_tool("ffmpeg"), "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"]
    graph = []
    for k, ((start, end), _) in enumerate(batch):
        window = (["-ss", f"{start:.3f}"] if start > 0 else []) + \
            (["-t", f"{end - start:.3f}"] if end is not None else [])
        args += [*input_args(), *window, "-i", input_url(path)]
        graph.append(f"[{k}:a:0]aformat=channel_layouts=mono,showwavespic=s={width}x"
                     f"{wave_height(width)}:colors={WAVE_COLOR}:scale=sqrt,format=yuvj420p[w{k}]")
    args += ["-filter_complex", ";".join(graph)]
    for k, (_, tmp) in enumerate(batch):
        args += ["-map", f"[w{k}]", *_output(tmp)]
    return args


def _tmp_name(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _run_all(path: str | os.PathLike[str], jobs: Sequence[tuple[Any, Path]],
             build: Callable[[list[tuple[Any, Path]]], list[str]], fallback: Callable[[Any], Hashable],
             duration: float | None, timeout: float | None, what: str) -> list[Path]:
    """Make every (key, output) of `jobs`: identical keys share one ffmpeg output, batches
    of MAX_INPUTS_PER_RUN run as one process each, empty outputs (a time past the end)
    are made again at the fallback key; then each output is moved into place."""
    if not jobs:
        return []
    _stat_for_reading(Path(path))  # MediaNotFoundError / MediaPermissionError, named clearly
    by_key: dict[Any, list[Path]] = {}
    for key, out in jobs:
        by_key.setdefault(key, []).append(out)
    limit = timeout if timeout is not None else decode_timeout(duration)
    temps: dict[Any, Path] = {}
    try:
        for key, outs in by_key.items():
            outs[0].parent.mkdir(parents=True, exist_ok=True)
            temps[key] = _tmp_name(outs[0])
        keys = list(by_key)
        for i in range(0, len(keys), MAX_INPUTS_PER_RUN):
            chunk = keys[i:i + MAX_INPUTS_PER_RUN]
            _run(path, build([(k, temps[k]) for k in chunk]), limit, what)
        empty = [k for k in keys if not _nonempty(temps[k])]
        if empty:
            log.debug("%s: %d %s thumbnail(s) came out empty (past the end?): using %r",
                      path, len(empty), what, fallback(empty[0]))
            retry_key = fallback(empty[0])
            retry = temps[empty[0]]
            _run(path, build([(retry_key, retry)]), limit, what)
            if not _nonempty(retry):
                raise DecodeError(path, f"no {what} could be decoded for a thumbnail")
            for k in empty[1:]:
                shutil.copyfile(retry, temps[k])
        made = []
        for key, outs in by_key.items():
            for extra in outs[1:]:  # same picture, another name
                tmp = _tmp_name(extra)
                extra.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(temps[key], tmp)
                os.replace(tmp, extra)
                made.append(extra)
            os.replace(temps[key], outs[0])
            made.append(outs[0])
        return made
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def _nonempty(p: Path) -> bool:
    try:
        return p.stat().st_size > 0
    except FileNotFoundError:
        return False


def _run(path: str | os.PathLike[str], args: list[str], timeout: float, what: str) -> None:
    _, err, code = run_to_end(args, Path(path), timeout)
    if code != 0:
        tail = "\n".join(err.strip().splitlines()[-20:])
        if "matches no streams" in tail:  # -map 0:V:0 / [0:a:0] of a file without one
            reason = f"no {'video' if what == 'frame' else 'audio'} stream"
        else:
            reason = last_error_line(tail, path, f"ffmpeg exited with code {code}")
        raise DecodeError(path, f"{what} thumbnail failed ({reason})", tail)


__all__ = ["DEFAULT_THUMB_WIDTH", "MAX_INPUTS_PER_RUN", "frame_thumbnails",
           "waveform_thumbnails", "wave_height"]
