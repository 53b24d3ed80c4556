"""probe(path): what is in a media file, read with ffprobe (JSON), as typed records."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from mmrec.errors import (
    EmptyFileError,
    MediaChangedError,
    MediaNotFoundError,
    MediaPermissionError,
    NoMediaStreamError,
    UnreadableMediaError,
)
from mmrec.media.runner import (
    DEFAULT_PROBE_TIMEOUT_S,
    _tail_text,
    find_tool,
    input_args,
    input_url,
    last_error_line,
    run_to_end,
)

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
    mtime_ns: int | None = None  # when probed; decoders check the file has not changed since

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
    except (TypeError, ValueError, OverflowError):
        return None


def _lower_tags(tags: dict[str, Any] | None) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (tags or {}).items()}


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise rotation to apply for display, from the display matrix or the old tag."""
    for side in stream.get("side_data_list") or []:
        if isinstance(side, dict) and "rotation" in side:
            # ffprobe reports the display matrix angle counter-clockwise.
            angle = _signed_float(side["rotation"])
            return int(round(-angle)) % 360 if angle is not None else 0
    rotate = _lower_tags(stream.get("tags")).get("rotate")
    return int(rotate) % 360 if rotate and rotate.lstrip("-").isdigit() else 0


def _signed_float(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


# Demuxers whose "file" is a list of other files (HLS, ffconcat, DASH manifests): read as
# media they would embed whatever local files they name, so they are refused.
PLAYLIST_FORMATS = frozenset({"hls", "concat", "dash"})


def _parse(path: Path, data: dict[str, Any], st: os.stat_result) -> MediaInfo:
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
                    index=_index(s),
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
                    index=_index(s),
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
                    index=_index(s),
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
        size_bytes=st.st_size,
        bit_rate=_int(fmt.get("bit_rate")),
        video=tuple(video),
        audio=tuple(audio),
        subtitles=tuple(subs),
        tags=tags,
        mtime_ns=st.st_mtime_ns,
    )


def _index(stream: dict[str, Any]) -> int:
    """The stream's absolute index (ffprobe always gives one; -1 only if it did not)."""
    value = _int(stream.get("index"))
    return value if value is not None and value >= 0 else -1


def _stat_for_reading(p: Path) -> os.stat_result:
    """stat() of a regular file this process can open, or the MediaError that says why not.

    The file is opened (non-blocking, so a FIFO named .mp4 cannot hang us) rather than
    just stat()ed, so permission problems surface here with a clear reason instead of
    as an ffprobe failure.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError as e:
        reason = "broken symlink" if os.path.islink(p) else "no such file"
        raise MediaNotFoundError(p, reason) from e
    except PermissionError as e:
        raise MediaPermissionError(p, f"permission denied ({e.strerror})") from e
    except (ValueError, UnicodeError) as e:  # NUL byte, or a name no file system can hold
        raise MediaNotFoundError(p, f"not a valid file name ({e})") from e
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise MediaNotFoundError(p, "symlink loop (too many levels of symbolic links)") from e
        if e.errno in (errno.ENAMETOOLONG, errno.ENOTDIR):
            raise MediaNotFoundError(p, f"no such file ({e.strerror})") from e
        raise UnreadableMediaError(p, f"cannot open the file ({e.strerror or e})") from e
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode):
        raise MediaNotFoundError(p, "not a regular file")
    return st


def ensure_unchanged(info: MediaInfo) -> None:
    """Raise if the file vanished or changed (size, mtime) since probe() read it.

    Decoders call this before reporting a result or a failure, so a file that is still
    being written, replaced or deleted during ingestion is reported as such
    (MediaNotFoundError, MediaChangedError) instead of as a corrupt file.
    """
    if info.mtime_ns is None:  # not from probe(): nothing to compare with
        return
    try:
        st = os.stat(info.path)
    except FileNotFoundError as e:
        raise MediaNotFoundError(info.path, "file vanished while it was being read") from e
    except OSError as e:
        raise MediaChangedError(
            info.path, f"file became unreadable while it was being read ({e.strerror or e})"
        ) from e
    if st.st_size != info.size_bytes or st.st_mtime_ns != info.mtime_ns:
        raise MediaChangedError(
            info.path,
            f"file changed while it was being read ({info.size_bytes} -> {st.st_size} bytes): "
            "still being written or replaced; read it again once it is complete",
        )


def probe(path: str | Path, timeout: float = DEFAULT_PROBE_TIMEOUT_S) -> MediaInfo:
    """Read container, duration, streams and tags of a media file.

    Args:
        path: the file.
        timeout: seconds before ffprobe is killed (FfmpegTimeoutError).

    Raises:
        MediaNotFoundError (missing, not a regular file, broken symlink, symlink loop),
        MediaPermissionError (exists but may not be read), EmptyFileError,
        UnreadableMediaError (not media, corrupt, truncated before its index),
        NoMediaStreamError (no audio or video stream), FfmpegTimeoutError. Nothing else:
        any file content gives a MediaInfo or one of these.
    """
    p = Path(os.fsdecode(path)) if isinstance(path, bytes) else Path(path)
    st = _stat_for_reading(p)
    if st.st_size == 0:
        raise EmptyFileError(p, "file is empty (0 bytes)")
    args = [
        find_tool("ffprobe"), "-v", "error", "-hide_banner", *input_args(),
        "-show_format", "-show_streams", "-of", "json", input_url(p),
    ]
    out, err, code = run_to_end(args, p, timeout)
    tail = _tail_text(err)
    if code != 0:
        reason = last_error_line(tail, p, f"ffprobe exited with code {code}")
        raise UnreadableMediaError(p, f"not a readable media file ({reason})", tail)
    try:
        data = json.loads(out.decode("utf-8", "replace") or "{}")
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        info = _parse(p, data, st)
    except (ValueError, TypeError, AttributeError, KeyError) as e:
        raise UnreadableMediaError(p, f"ffprobe returned malformed output ({e})", tail) from e
    playlist = set(info.container.split(",")) & PLAYLIST_FORMATS
    if playlist:
        raise UnreadableMediaError(
            p, f"is a playlist ({min(playlist)}) that points at other files, not media: "
               "point mmrec at the media files themselves", tail)
    if not info.video and not info.audio:
        found = ", ".join(sorted({s.get("codec_type", "?") for s in data.get("streams") or []}))
        raise NoMediaStreamError(
            p, f"no audio or video stream (streams found: {found or 'none'})", tail
        )
    return info
