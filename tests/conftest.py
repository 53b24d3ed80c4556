"""Shared fixtures: a small media library generated with ffmpeg lavfi at test time.

Everything is session-scoped and tiny (a few seconds, small frames) so the whole
library builds in a few seconds on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly; fail the test session loudly if it cannot make a fixture."""
    assert FFMPEG, "ffmpeg is required for the tests (make test installs it)"
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120)


def _video(out: Path, seconds: float, size: str = "320x240", rate: int = 25,
           audio: bool = True, extra: tuple[str, ...] = (), codec: tuple[str, ...] = ()) -> Path:
    args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}"]
    ffmpeg(*args, *codec, *extra, "-shortest", str(out))
    return out


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep tests offline and away from the user's caches and databases."""
    home = tmp_path_factory.mktemp("mmrec-home")
    os.environ["MMREC_HOME"] = str(home)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HOME"] = str(home / "hf")


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> path of generated media files (good and broken)."""
    d = tmp_path_factory.mktemp("media")
    h264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    out: dict[str, Path] = {}
    out["mp4"] = _video(d / "clip.mp4", 6, codec=(*h264, "-c:a", "aac"))
    out["mkv"] = _video(d / "clip.mkv", 4, codec=(*h264, "-c:a", "libvorbis"))
    out["webm"] = _video(d / "clip.webm", 3, size="160x120",
                         codec=("-c:v", "libvpx", "-b:v", "200k", "-c:a", "libopus"))
    out["video_only"] = _video(d / "silent.mp4", 5, audio=False, codec=h264)
    out["portrait"] = _video(d / "portrait.mp4", 3, size="180x320", audio=False, codec=h264)
    rotated = d / "rotated.mp4"
    base = _video(d / "landscape_src.mp4", 3, size="320x180", audio=False, codec=h264)
    ffmpeg("-i", str(base), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    out["rotated"] = rotated
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=12",
           "-ac", "2", str(d / "tone.wav"))
    out["wav"] = d / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=color=pink:duration=5:sample_rate=44100",
           "-metadata", "title=Pink Noise Study", "-metadata", "artist=Test Artist",
           "-metadata", "genre=Ambient", "-c:a", "libmp3lame", "-q:a", "6", str(d / "noise.mp3"))
    out["mp3"] = d / "noise.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=550:sample_rate=22050:duration=3",
           str(d / "short.flac"))
    out["flac"] = d / "short.flac"
    # Three flat colour scenes of 2 s each, for scene-change sampling.
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=160x120:rate=10:duration=2",
           "-f", "lavfi", "-i", "color=c=blue:size=160x120:rate=10:duration=2",
           "-f", "lavfi", "-i", "color=c=green:size=160x120:rate=10:duration=2",
           "-filter_complex", "[0:v][1:v][2:v]concat=n=3:v=1:a=0", *h264, str(d / "scenes.mp4"))
    out["scenes"] = d / "scenes.mp4"
    # Subtitles: an embedded text stream, and sidecar .srt/.vtt/.json/.txt files.
    srt = d / "subs_src.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:02,000\nHello pasta world\n\n"
                   "2\n00:00:02,500 --> 00:00:03,900\nTomato sauce\n", encoding="utf-8")
    ffmpeg("-i", str(out["mkv"]), "-i", str(srt), "-map", "0", "-map", "1", "-c", "copy",
           "-c:s", "srt", "-metadata:s:s:0", "language=eng", str(d / "with_subs.mkv"))
    out["embedded_subs"] = d / "with_subs.mkv"
    side = _video(d / "Cooking_Show-episode.01.mp4", 3, size="160x120", codec=(*h264, "-c:a", "aac"))
    (d / "Cooking_Show-episode.01.json").write_text(json.dumps(
        {"title": "Pasta night", "description": "We cook spaghetti.", "tags": ["food", "italian"]}))
    (d / "Cooking_Show-episode.01.txt").write_text("Extra notes about the dish.\n")
    (d / "Cooking_Show-episode.01.vtt").write_text(
        "WEBVTT\n\n00:00.000 --> 00:01.500\nBoil the water\n\n00:01.500 --> 00:02.900\nAdd salt\n")
    out["sidecar"] = side
    # Broken inputs.
    (d / "empty.mp4").write_bytes(b"")
    out["empty"] = d / "empty.mp4"
    (d / "random.mkv").write_bytes(os.urandom(64 * 1024))
    out["random"] = d / "random.mkv"
    (d / "notes.mp4").write_text("this is a text file, not a video\n" * 50)
    out["text_as_media"] = d / "notes.mp4"
    data = out["mp4"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom is at the end
    out["truncated"] = d / "truncated.mp4"
    fast = d / "fast_src.mp4"
    ffmpeg("-i", str(out["mp4"]), "-c", "copy", "-movflags", "+faststart", str(fast))
    fdata = fast.read_bytes()
    (d / "truncated_faststart.mp4").write_bytes(fdata[: len(fdata) * 2 // 5])
    out["truncated_faststart"] = d / "truncated_faststart.mp4"
    ffmpeg("-i", str(srt), "-c:s", "srt", str(d / "subs_only.mkv"))
    out["no_stream"] = d / "subs_only.mkv"
    return out


@pytest.fixture(scope="session")
def run_ffmpeg():
    """The quiet ffmpeg runner used to build fixtures, for test modules that make their own."""
    return ffmpeg


@pytest.fixture(scope="session")
def ffmpeg_codecs() -> dict[str, frozenset[str]]:
    """What this machine's ffmpeg really has: {"encoders": names, "decoders": names}.

    Tests that need an optional codec (AV1, ...) choose from this instead of skipping.
    """
    assert FFMPEG, "ffmpeg is required for the tests"
    out = {}
    for kind in ("encoders", "decoders"):
        text = subprocess.run([FFMPEG, "-hide_banner", f"-{kind}"], capture_output=True,
                              text=True, check=True, timeout=60).stdout
        names = set()
        for line in text.splitlines():
            parts = line.split()
            # rows look like " V....D libx264   description"; the legend ends at "------"
            if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS" and "=" not in line:
                names.add(parts[1])
        out[kind] = frozenset(names)
    return out
