"""Audio decoding to mono float32 at a requested rate, streamed in fixed windows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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

DEFAULT_SAMPLE_RATE = 48_000
DEFAULT_WINDOW_S = 10.0


@dataclass(frozen=True)
class AudioWindow:
    """Samples of [start, end) seconds; the last window of a file may be shorter."""

    index: int
    start: float
    end: float
    samples: np.ndarray  # float32 [n], mono, in [-1, 1]
    sample_rate: int


@dataclass(frozen=True)
class DecodedAudio:
    info: MediaInfo
    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def _build_args(path: str, info: MediaInfo, sample_rate: int, max_seconds: float | None) -> list[str]:
    import ffmpeg  # lazy: keep `import mmrec` free of ffmpeg bindings

    if not info.audio:
        raise NoMediaStreamError(path, "no audio stream to decode (video-only file)")
    out_kwargs: dict[str, object] = {"format": "f32le", "ac": 1, "ar": sample_rate}
    if max_seconds is not None:
        out_kwargs["t"] = max_seconds
    stream = ffmpeg.input(INPUT_PLACEHOLDER, **INPUT_OPTIONS)[str(info.audio[0].index)]
    out = ffmpeg.output(stream, "pipe:", **out_kwargs).global_args(
        "-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"
    )
    return with_input(out.compile(cmd=find_tool("ffmpeg")), path)


def iter_audio_windows(
    path: str | Path,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    window_s: float = DEFAULT_WINDOW_S,
    info: MediaInfo | None = None,
    max_seconds: float | None = None,
    timeout: float | None = None,
) -> Iterator[AudioWindow]:
    """Stream the first audio stream as mono windows of window_s seconds.

    Memory stays bounded by one window whatever the file's length. The last window
    holds what is left (shorter); padding it is the consumer's choice. Samples are
    finite and within [-1, 1] (NaN/inf from a corrupt float stream become 0/±1).

    A 0-second audio file is an error, never zero windows: probe() raises
    UnreadableMediaError or NoMediaStreamError when the container holds no frame to
    identify a stream from (mp3, ogg/opus, m4a), otherwise this raises DecodeError
    ("no audio sample could be decoded").

    Raises:
        the probe() errors; NoMediaStreamError for a video-only file; DecodeError (ffmpeg
        failed, an undecodable codec, or no sample at all); TruncatedMediaError;
        MediaNotFoundError / MediaChangedError when the file vanished or changed since
        it was probed; FfmpegTimeoutError when ffmpeg runs past `timeout` (default
        decode_timeout(duration)). Only MediaErrors, whatever the file holds.
    """
    if sample_rate <= 0 or window_s <= 0:
        raise ConfigError(f"sample_rate and window_s must be > 0, got {sample_rate}, {window_s}")
    info = info or probe(path)
    args = _build_args(str(path), info, sample_rate, max_seconds)
    win = max(1, int(round(window_s * sample_rate)))
    total = 0
    with StreamingProcess(args, path, timeout or decode_timeout(info.duration)) as proc:
        index = 0
        while True:
            data = proc.read(win * 4)
            n = len(data) // 4
            if n == 0:
                break
            samples = np.frombuffer(data[: n * 4], dtype="<f4").astype(np.float32)
            if not np.isfinite(samples).all() or np.abs(samples).max() > 1.0:
                samples = np.clip(np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0), -1, 1)
            start = total / sample_rate
            total += n
            yield AudioWindow(index, start, total / sample_rate, samples, sample_rate)
            index += 1
        code = proc.finish()
        tail = proc.stderr_tail
    ensure_unchanged(info)
    if code != 0:
        reason = last_error_line(tail, path, f"ffmpeg exited with code {code}")
        raise DecodeError(path, f"audio decoding failed ({reason})", tail)
    if total == 0:
        raise DecodeError(path, "no audio sample could be decoded", tail)
    expected = info.audio[0].duration or info.duration
    if max_seconds is not None and expected:
        expected = min(expected, max_seconds)
    decoded = total / sample_rate
    if expected and decoded < 0.9 * expected - 1.0:
        raise TruncatedMediaError(
            path,
            f"audio decodes only to {decoded:.1f}s of the announced {expected:.1f}s "
            "(truncated or corrupt file)",
            tail,
        )


def decode_audio(
    path: str | Path,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    info: MediaInfo | None = None,
    max_seconds: float | None = None,
    timeout: float | None = None,
) -> DecodedAudio:
    """The whole first audio stream (or its first max_seconds) as one mono array.

    Raises the iter_audio_windows() errors; never returns zero samples.
    """
    info = info or probe(path)
    windows = iter_audio_windows(path, sample_rate, 60.0, info, max_seconds, timeout)
    parts = [w.samples for w in windows]
    return DecodedAudio(info, np.concatenate(parts), sample_rate)
