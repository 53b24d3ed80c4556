"""Generated speech (espeak-ng + ffmpeg) for the speech tests and the demo: short clips
where chosen phrases are spoken at chosen times, silence elsewhere.

Synthetic speech keeps tests offline and the files small, and the true time of every
phrase is known, so a transcript's timestamps can be checked against it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmrec.errors import MmrecError
from mmrec.media.runner import find_tool
from mmrec.media.sidecar import Cue

DEFAULT_RATE = 160  # words per minute: espeak-ng's 175 is a little fast for tiny models
_TIMEOUT_S = 120
_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "48k"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "35", "-pix_fmt", "yuv420p",
             "-c:a", "libvorbis"],
    ".m4a": ["-c:a", "aac", "-b:a", "48k"],
    ".mp3": ["-c:a", "libmp3lame", "-q:a", "7"],
    ".flac": ["-c:a", "flac"],
    ".wav": ["-c:a", "pcm_s16le"],
}
_AUDIO_ONLY = frozenset({".m4a", ".mp3", ".flac", ".wav"})


class SpeechToolError(MmrecError, RuntimeError):
    """espeak-ng is missing, or it or ffmpeg failed to make a spoken clip."""


# One phrase of a generated clip and when it is heard: [start, end) seconds, like a cue.
SpokenPhrase = Cue


@dataclass(frozen=True)
class SpokenClip:
    """A generated clip and the true times of its phrases."""

    path: Path
    duration: float
    phrases: tuple[SpokenPhrase, ...]


def _espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise SpeechToolError(
            "espeak-ng was not found on PATH: install the Debian package `espeak-ng` "
            "(`sudo apt-get install espeak-ng`; `make test` installs it)"
        )
    return found


def _run(args: list[str], out: Path, what: str) -> None:
    try:
        proc = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise SpeechToolError(f"{out}: {what} timed out after {_TIMEOUT_S}s") from e
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise SpeechToolError(f"{out}: {what} failed with code {proc.returncode} ({tail[0]})")


def wav_duration(path: str | Path) -> float:
    """Seconds of a PCM WAV file (read from its header)."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def speak(text: str, out_wav: str | Path, voice: str = "en-us", rate: int = DEFAULT_RATE) -> Path:
    """Write `text` spoken by espeak-ng to a WAV file (22.05 kHz mono); returns its path.

    Raises:
        SpeechToolError: espeak-ng is not installed (names the Debian package) or failed.
    """
    if not text.strip():
        raise ValueError("speak() needs some text")
    out = Path(out_wav)
    _run([_espeak(), "-v", voice, "-s", str(int(rate)), "-w", str(out), "--", text], out, "espeak-ng")
    return out


def make_spoken_clip(
    path: str | Path,
    phrases: Sequence[tuple[float, str]],
    duration: float,
    video: bool = True,
    voice: str = "en-us",
    rate: int = DEFAULT_RATE,
    sample_rate: int = 16_000,
) -> SpokenClip:
    """A small clip of `duration` seconds where each (start, text) phrase is spoken from
    its start time on and silence fills the rest (a phrase running past the end is cut).

    The container comes from the suffix: .mp4/.mkv carry a 160x120 testsrc2 picture when
    `video` is true; .m4a, .mp3, .flac and .wav are audio-only.

    Raises:
        SpeechToolError: espeak-ng is missing or a tool failed; ValueError on a bad argument.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in _CODECS:
        raise ValueError(f"{out}: unsupported suffix {suffix!r} (use one of {sorted(_CODECS)})")
    if video and suffix in _AUDIO_ONLY:
        raise ValueError(f"{out}: {suffix} holds no video; pass video=False or use .mp4/.mkv")
    if duration <= 0:
        raise ValueError(f"duration must be > 0, got {duration}")
    for start, text in phrases:
        if not 0 <= start < duration or not text.strip():
            raise ValueError(f"phrase {text!r} at {start}s: needs text and 0 <= start < {duration}")
    spoken: list[SpokenPhrase] = []
    with tempfile.TemporaryDirectory(prefix="mmrec-speech-") as tmp:
        args = [find_tool("ffmpeg"), "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-i", f"anullsrc=r={sample_rate}:cl=mono:d={duration}"]
        graph: list[str] = []
        for i, (start, text) in enumerate(phrases):
            wav = speak(text, Path(tmp) / f"phrase{i}.wav", voice, rate)
            spoken.append(SpokenPhrase(start, min(duration, start + wav_duration(wav)), text))
            args += ["-i", str(wav)]
            graph.append(f"[{i + 1}:a]aresample={sample_rate},adelay={round(start * 1000)}:all=1[p{i}]")
        mix = "".join(f"[p{i}]" for i in range(len(phrases)))
        graph.append(f"[0:a]{mix}amix=inputs={len(phrases) + 1}:duration=first:normalize=0[a]"
                     if phrases else "[0:a]anull[a]")
        if video:
            args += ["-f", "lavfi", "-i", f"testsrc2=size=160x120:rate=10:duration={duration}"]
        args += ["-filter_complex", ";".join(graph), "-map", "[a]"]
        if video:
            args += ["-map", f"{len(phrases) + 1}:v"]
        args += [*_CODECS[suffix], "-ac", "1", "-ar", str(sample_rate), "-t", str(duration), str(out)]
        _run(args, out, "ffmpeg (mixing the spoken clip)")
    return SpokenClip(out, float(duration), tuple(spoken))
