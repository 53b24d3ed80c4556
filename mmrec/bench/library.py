"""The media the decode and ingest benchmarks read: a given directory, or the generated
sample library (a three-file subset with --quick)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrec.media import MEDIA_SUFFIXES, SAMPLES, make_sample, make_sample_library, probe

QUICK_SAMPLES = ("pasta_night", "pasta_night_small", "guitar_lesson")


def media_library(out: Path, library: Path | None, quick: bool) -> Path:
    """The directory to benchmark: `library` as given, else samples generated under out."""
    if library is not None:
        return library
    lib = out / ("library-quick" if quick else "library")
    if quick:
        lib.mkdir(parents=True, exist_ok=True)
        for spec in SAMPLES:
            if spec.name in QUICK_SAMPLES and not (lib / f"{spec.name}{spec.suffix}").exists():
                make_sample(spec, lib)
    else:
        make_sample_library(lib)
    return lib


def probed(lib: Path) -> dict[Path, Any]:
    """MediaInfo of every readable media file under lib (unreadable ones are left out)."""
    out = {}
    for p in sorted(lib.rglob("*")):
        if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES:
            try:
                out[p] = probe(p)
            except Exception:  # noqa: BLE001 - a bad file is not part of the throughput
                continue
    return out
