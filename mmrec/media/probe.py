"""probe(path): what is in a media file, read with ffprobe (JSON), as typed records."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmrec.errors import (
    EmptyFileError,
    MediaNotFoundError,
    NoMediaStreamError,
    UnreadableMediaError,
)
from mmrec.media.runner import DEFAULT_PROBE_TIMEOUT_S, _tail_text, find_tool, run_to_end

# Container/stream tags surfaced as first-class fields; all tags stay in `tags`.
KNOWN_TAGS = ("title", "artist", "album", "genre", "comment", "language", "description")


@dataclass(frozen=True)
class VideoStream:
    """One video stream; width/height are as coded, rotation is clockwise degrees."""

    index: int
    codec: str
    width: int
    height: int
    fps: float | None
    rotation: int = 0
    duration: float | None = None
    frames: int | None = None

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown to a viewer, after rotation."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class AudioStream:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class SubtitleStream:
    index: int
    codec: str
    language: str | None = None

    @property
    def is_text(self) -> bool:
        """Text subtitles can be turned into words; bitmap ones (dvd, pgs) cannot."""
        return self.codec in {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text"}


@dataclass(frozen=True)
class MediaInfo:
    """Everything probe() learned about one file."""

    path: str
    container: str
    duration: float | None
    size_bytes: int
    bit_rate: int | None
    video: tuple[VideoStream, ...] = ()
    audio: tuple[AudioStream, ...] = ()
    subtitles: tuple[SubtitleStream, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """"video" when there is a real video stream (cover art does not count), else "audio"."""
        return "video" if self.video else "audio"

    @property
    def has_video(self) -> bool:
        return bool(self.video)

    @property
    def has_audio(self) -> bool:
        return bool(self.audio)

    def tag(self, name: str) -> str | None:
        return self.tags.get(name)


def _fraction(text: str | None) -> float | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        return None
    return value if value > 0 and math.isfinite(value) else None


def _float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) and out >= 0 else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _lower_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (tags or {}).items()}


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise rotation to apply for display, from the display matrix or the old tag."""
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            # ffprobe reports the display matrix angle counter-clockwise.
            return int(round(-float(side["rotation"]))) % 360
    rotate = _lower_tags(stream.get("tags")).get("rotate")
    return int(rotate) % 360 if rotate and rotate.lstrip("-").isdigit() else 0


def _parse(path: Path, data: dict[str, Any]) -> MediaInfo:
    fmt = data.get("format") or {}
    video: list[VideoStream] = []
    audio: list[AudioStream] = []
    subs: list[SubtitleStream] = []
    stream_tags: dict[str, str] = {}
    for s in data.get("streams") or []:
        kind = s.get("codec_type")
        tags = _lower_tags(s.get("tags"))
        lang = tags.get("language")
        if lang and lang != "und":
            stream_tags.setdefault("language", lang)
        if kind == "video":
            if (s.get("disposition") or {}).get("attached_pic"):
                continue  # cover art in an audio file, not a video
            video.append(
                VideoStream(
                    index=int(s.get("index", len(video))),
                    codec=str(s.get("codec_name", "unknown")),
                    width=_int(s.get("width")) or 0,
                    height=_int(s.get("height")) or 0,
                    fps=_fraction(s.get("avg_frame_rate")) or _fraction(s.get("r_frame_rate")),
                    rotation=_rotation(s),
                    duration=_float(s.get("duration")),
                    frames=_int(s.get("nb_frames")),
                )
            )
        elif kind == "audio":
            audio.append(
                AudioStream(
                    index=int(s.get("index", len(audio))),
                    codec=str(s.get("codec_name", "unknown")),
                    sample_rate=_int(s.get("sample_rate")) or 0,
                    channels=_int(s.get("channels")) or 0,
                    duration=_float(s.get("duration")),
                    language=lang if lang and lang != "und" else None,
                )
            )
        elif kind == "subtitle":
            subs.append(
                SubtitleStream(
                    index=int(s.get("index", len(subs))),
                    codec=str(s.get("codec_name", "unknown")),
                    language=lang if lang and lang != "und" else None,
                )
            )
    tags = {**stream_tags, **_lower_tags(fmt.get("tags"))}
    durations = [d for d in [_float(fmt.get("duration"))] if d]
    if not durations:
        durations = [st.duration for st in (*video, *audio) if st.duration]
    return MediaInfo(
        path=str(path),
        container=str(fmt.get("format_name", "unknown")),
        duration=max(durations) if durations else None,
        size_bytes=path.stat().st_size,
        bit_rate=_int(fmt.get("bit_rate")),
        video=tuple(video),
        audio=tuple(audio),
        subtitles=tuple(subs),
        tags=tags,
    )


def probe(path: str | Path, timeout: float = DEFAULT_PROBE_TIMEOUT_S) -> MediaInfo:
    """Read container, duration, streams and tags of a media file.

    Args:
        path: the file.
        timeout: seconds before ffprobe is killed (FfmpegTimeoutError).

    Raises:
        MediaNotFoundError, EmptyFileError, UnreadableMediaError (not media, corrupt,
        truncated before its index), NoMediaStreamError (no audio or video stream).
    """
    p = Path(path)
    if not p.is_file():
        raise MediaNotFoundError(p, "no such file" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise EmptyFileError(p, "file is empty (0 bytes)")
    args = [
        find_tool("ffprobe"), "-v", "error", "-hide_banner",
        "-show_format", "-show_streams", "-of", "json", str(p),
    ]
    out, err, code = run_to_end(args, p, timeout)
    tail = _tail_text(err)
    if code != 0:
        last = tail.splitlines()[-1] if tail else f"ffprobe exited with code {code}"
        # ffprobe prefixes its message with the path; keep only the reason.
        reason = last.split(": ", 1)[-1] if last.startswith(str(p)) else last
        raise UnreadableMediaError(p, f"not a readable media file ({reason})", tail)
    try:
        data = json.loads(out.decode("utf-8", "replace") or "{}")
    except json.JSONDecodeError as e:
        raise UnreadableMediaError(p, "ffprobe returned malformed output", tail) from e
    info = _parse(p, data)
    if not info.video and not info.audio:
        found = ", ".join(sorted({s.get("codec_type", "?") for s in data.get("streams") or []}))
        raise NoMediaStreamError(
            p, f"no audio or video stream (streams found: {found or 'none'})", tail
        )
    return info
