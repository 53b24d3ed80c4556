"""A small generated sample library (ffmpeg lavfi sources): videos with sound, audio-only
files, near-duplicate variants and sidecar text on a few clear topics.

Used by `make demo`, the end-to-end tests and the benchmarks, so all three see the same
kind of media without committing any binaries.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mmrec.media.runner import find_tool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleSpec:
    """One generated file: lavfi sources, container options and its sidecar text."""

    name: str
    video: str | None
    audio: str | None
    title: str
    description: str
    tags: tuple[str, ...]
    suffix: str = ".mp4"
    seconds: float = 6.0


def _v(src: str, size: str = "320x240", rate: int = 24) -> str:
    return f"{src}=size={size}:rate={rate}"


SAMPLES: tuple[SampleSpec, ...] = (
    SampleSpec("pasta_night", _v("testsrc2"), "sine=frequency=440",
               "Pasta night", "How to cook spaghetti with a fresh tomato sauce and basil.",
               ("cooking", "recipe", "italian food")),
    SampleSpec("pasta_night_small", _v("testsrc2", "160x120"), "sine=frequency=440",
               "Pasta night (mobile version)", "Cooking spaghetti with tomato sauce, re-encoded.",
               ("cooking", "recipe"), suffix=".mkv"),
    SampleSpec("football_highlights", _v("smptebars"), "anoisesrc=color=white:amplitude=0.3",
               "Football match highlights", "All the goals from the weekend's football match.",
               ("sports", "football", "goals")),
    SampleSpec("mountain_travel_vlog", _v("mandelbrot"), "sine=frequency=220",
               "Travel vlog: hiking in the mountains", "A day of hiking, lakes and alpine villages.",
               ("travel", "vlog", "nature"), seconds=8.0),
    SampleSpec("city_timelapse", _v("life", "320x240", 10), None,  # silent: a video-only item
               "City timelapse at night", "Traffic lights and skyscrapers in a night timelapse.",
               ("city", "timelapse"), suffix=".webm"),
    SampleSpec("jazz_piano_trio", None,
               "aevalsrc=0.2*sin(2*PI*261.6*t)+0.2*sin(2*PI*329.6*t)+0.2*sin(2*PI*392*t)",
               "Late night jazz piano trio", "Smooth jazz with piano, double bass and brushes.",
               ("music", "jazz", "piano"), suffix=".mp3", seconds=12.0),
    SampleSpec("rain_ambience", None, "anoisesrc=color=brown:amplitude=0.4",
               "Rain on the window", "Relaxing rain sounds for sleep and focus.",
               ("ambience", "rain", "sleep"), suffix=".flac", seconds=12.0),
    SampleSpec("guitar_lesson", None, "sine=frequency=196",
               "Beginner guitar lesson", "Learn your first chords on the acoustic guitar.",
               ("music", "lesson", "guitar"), suffix=".wav", seconds=8.0),
    SampleSpec("cooking_podcast", None, "sine=frequency=523",
               "Kitchen talk podcast", "Chefs discuss pasta recipes and Italian cooking.",
               ("cooking", "podcast"), suffix=".m4a", seconds=10.0),
)

_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "libvorbis"],
    ".webm": ["-c:v", "libvpx", "-b:v", "300k", "-deadline", "realtime", "-c:a", "libopus"],
    ".mp3": ["-c:a", "libmp3lame", "-q:a", "6"],
    ".flac": ["-c:a", "flac"],
    ".wav": ["-c:a", "pcm_s16le"],
    ".m4a": ["-c:a", "aac"],
}


def make_sample(spec: SampleSpec, directory: Path, sample_rate: int = 48000) -> Path:
    """Generate one sample file and its JSON sidecar; returns the media path."""
    out = directory / f"{spec.name}{spec.suffix}"
    args = [find_tool("ffmpeg"), "-nostdin", "-v", "error", "-y"]
    length = ["-t", str(spec.seconds)]
    if spec.video:
        args += [*length, "-f", "lavfi", "-i", spec.video]
    if spec.audio:
        args += [*length, "-f", "lavfi", "-i", spec.audio]
    args += _CODECS[spec.suffix]
    args += ["-ar", str(sample_rate), "-metadata", f"title={spec.title}", *length, str(out)]
    proc = subprocess.run(args, capture_output=True, timeout=120)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
        raise RuntimeError(f"{out}: ffmpeg could not generate the sample ({tail[0]})")
    sidecar = {"title": spec.title, "description": spec.description, "tags": list(spec.tags)}
    out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return out


BROKEN_NAME = "broken_download.mp4"


def make_sample_library(
    directory: str | Path, overwrite: bool = False, include_broken: bool = False
) -> list[Path]:
    """Generate the sample library into `directory` (files already there are kept).

    With include_broken, also write the first half of a video (an interrupted
    download) so demos show how a bad file is reported.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for spec in SAMPLES:
        path = d / f"{spec.name}{spec.suffix}"
        if overwrite or not path.exists() or not path.with_suffix(".json").exists():
            log.info("generating %s", path)
            make_sample(spec, d)
        paths.append(path)
    if include_broken:
        broken = d / BROKEN_NAME
        if overwrite or not broken.exists():
            data = paths[0].read_bytes()
            broken.write_bytes(data[: len(data) // 2])
        paths.append(broken)
    return paths


SPOKEN_NAME = "lecture_three.mp4"


def make_spoken_sample(directory: str | Path, overwrite: bool = False) -> Path:
    """A lecture whose topic is only spoken (espeak-ng), never in its title or sidecar: what a
    query finds through the speech transcript alone."""
    from mmrec.media.speech_samples import make_spoken_clip

    out = Path(directory) / SPOKEN_NAME
    if overwrite or not out.exists():
        make_spoken_clip(out, [(2.0, "today we learn how honey bees make honey from the nectar of flowers")],
                         10.0, video=True, rate=140)
        sidecar = {"title": "Lecture three", "description": "Recorded in room B.", "tags": ["lecture"]}
        out.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return out


INTERACTIONS_NAME = "interactions.csv"

# Sample users, each with a taste: (user, [(sample, event, value, comment)], in time order).
# Events follow the interactions format; the file names are relative to the library.
_USERS: tuple[tuple[str, tuple[tuple[str, str, str, str], ...]], ...] = (
    ("ana", (("pasta_night", "like", "", "lovely sauce"), ("football_highlights", "skip", "0.1", ""),
             ("cooking_podcast", "view", "0.95", ""), ("pasta_night_small", "view", "1", ""))),
    ("ben", (("jazz_piano_trio", "like", "", "smooth"), ("guitar_lesson", "view", "0.8", ""),
             ("football_highlights", "dislike", "", ""), ("rain_ambience", "share", "", ""))),
    ("cleo", (("mountain_travel_vlog", "like", "", "want to go hiking"),
              ("city_timelapse", "view", "0.9", ""), ("jazz_piano_trio", "skip", "0.05", ""),
              ("football_highlights", "view", "0.6", ""))),
    ("dan", (("football_highlights", "like", "", "what a goal"), ("city_timelapse", "view", "0.4", ""),
             ("mountain_travel_vlog", "view", "0.7", ""), ("cooking_podcast", "skip", "0.1", ""))),
    ("eve", (("rain_ambience", "like", "", ""), ("jazz_piano_trio", "view", "1", ""),
             ("guitar_lesson", "like", "", "great first lesson"), ("pasta_night", "skip", "0.2", ""))),
)


def write_sample_interactions(directory: str | Path) -> Path:
    """interactions.csv for the sample library: five users with different tastes, one
    event a day each (relative file names, ISO-8601 times)."""
    import csv

    d = Path(directory)
    out = d / INTERACTIONS_NAME
    suffix = {s.name: s.suffix for s in SAMPLES}
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item", "event", "value", "timestamp", "text"])
        for user, events in _USERS:
            for day, (name, event, value, text) in enumerate(events, start=1):
                w.writerow([user, f"{name}{suffix[name]}", event, value,
                            f"2026-11-{day:02d}T{8 + len(user)}:00:00Z", text])
    return out
