"""Speech and on-screen text as timed text segments, end to end: generated media with
espeak-ng speech and ffmpeg drawtext, ingested with the offline set, found by text queries
at the moment the words are said or shown, stored per item and per segment."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from mmrec import Catalog
from mmrec.catalog import IngestOptions
from mmrec.media.speech_samples import make_spoken_clip

SET = "offline-tiny"


def drawtext_clip(path: Path, text: str, start: float, end: float, duration: float = 10.0) -> None:
    """A white video showing `text` between start and end (seconds), silent."""
    draw = (f"drawtext=text='{text}':fontsize=44:fontcolor=black:x=40:y=150"
            f":enable='between(t,{start},{end})'")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=white:s=640x360:d={duration}", "-vf", draw, "-pix_fmt", "yuv420p", str(path)],
                   check=True)


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("sources") / "lib"
    lib.mkdir()
    make_spoken_clip(lib / "talk.mp4", [(3.0, "the giraffe eats leaves from tall trees")], 9.0, video=True)
    make_spoken_clip(lib / "pod.m4a", [(1.0, "welcome to the podcast about volcano science")], 7.0,
                     video=False)
    drawtext_clip(lib / "slide.mp4", "QUARTERLY REVENUE", 4.0, 8.0)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anoisesrc=d=4:c=pink:a=0.3",
                    str(lib / "noise.wav")], check=True)
    return lib


@pytest.fixture(scope="module")
def catalog(library, tmp_path_factory) -> Catalog:
    cat = Catalog(tmp_path_factory.mktemp("sources-db") / "cat.lance")
    summary = cat.ingest(library, preset=SET, options=IngestOptions(thumbnails=False))
    assert not summary.failed and len(summary.ingested) == 4
    return cat


def rows(catalog: Catalog) -> dict[str, dict]:
    t = catalog.store().items.to_arrow().select(["id", "path", "transcript", "language", "screen_text"])
    return {Path(r["path"]).name: r for r in t.to_pylist()}


def test_a_phrase_only_spoken_finds_its_file_and_the_moment(catalog):
    hits = catalog.search(text="a giraffe eating leaves", k=3).hits
    assert Path(hits[0].path).name == "talk.mp4"
    moment = catalog.search(text="a giraffe eating leaves", k=3, moments=True).hits[0]
    assert Path(moment.path).name == "talk.mp4" and moment.segment.label == "speech"
    assert moment.segment.start <= 4.0 and moment.segment.end >= 4.0  # spoken from 3 s for ~2.5 s
    assert "giraffe" in moment.segment.text.lower()


def test_text_on_screen_finds_its_time_window(catalog):
    moment = catalog.search(text="quarterly revenue", k=3, moments=True).hits[0]
    assert Path(moment.path).name == "slide.mp4" and moment.segment.label == "screen"
    assert moment.segment.start == pytest.approx(4.0, abs=2.1)
    assert moment.segment.end == pytest.approx(8.0, abs=2.1)
    assert "QUARTERLY" in moment.segment.text.upper()


def test_transcripts_are_stored_per_item(catalog):
    r = rows(catalog)
    assert "volcano" in r["pod.m4a"]["transcript"].lower() and r["pod.m4a"]["language"] == "en"
    assert "QUARTERLY" in r["slide.mp4"]["screen_text"].upper()
    assert r["noise.wav"]["transcript"] == ""  # noise is no speech, and no error either
    assert r["pod.m4a"]["screen_text"] is None  # an audio file is not read for screen text
    assert not catalog.errors()
    stats = catalog.stats()
    assert stats["with_transcript"] == 2 and stats["with_screen_text"] >= 1


def test_where_filters_on_the_transcript(catalog):
    hits = catalog.search(text="science", k=5, where="transcript LIKE '%olcano%'").hits
    assert [Path(h.path).name for h in hits] == ["pod.m4a"]


def test_no_asr_leaves_speech_out_and_changes_the_fingerprint(catalog, library, tmp_path):
    other = Catalog(tmp_path / "no-asr.lance")
    other.ingest(library, preset=SET, options=IngestOptions(thumbnails=False, sources=("screen",)))
    r = rows(other)
    assert r["pod.m4a"]["transcript"] is None and "QUARTERLY" in r["slide.mp4"]["screen_text"].upper()
    labels = set(other.store().segments.to_arrow().column("label").to_pylist())
    assert "speech" not in labels and "screen" in labels
    fps = [json.loads(row["fingerprints"])["text"] for row in
           (c.store().items.to_arrow().select(["fingerprints"]).to_pylist()[0] for c in (catalog, other))]
    assert fps[0] != fps[1]


def test_changing_the_sources_embeds_again_and_an_old_catalog_gains_the_columns(library, tmp_path):
    path = tmp_path / "old.lance"
    cat = Catalog(path)
    cat.ingest(library, preset=SET, options=IngestOptions(thumbnails=False, sources=()))
    store = cat.store()
    store.items.drop_columns(["transcript", "language", "screen_text"])  # as made before sources
    store.segments.drop_columns(["text"])
    assert Catalog(path).stats()["items"] == 4  # still readable
    again = Catalog(path).ingest(library, preset=SET, options=IngestOptions(thumbnails=False))
    assert len(again.ingested) == 4 and not again.unchanged  # new sources: every file again
    assert "volcano" in rows(Catalog(path))["pod.m4a"]["transcript"].lower()


def test_a_missing_file_source_names_the_set(tmp_path):
    from mmrec.errors import ConfigError

    with pytest.raises(ConfigError, match="no text source lyrics"):
        Catalog(tmp_path / "x.lance").ingest(tmp_path, preset=SET,
                                             options=IngestOptions(sources=("lyrics",)))


def test_tools_are_installed():
    """make installs them for tests; the sources' own tests say what is missing."""
    assert shutil.which("espeak-ng") and shutil.which("tesseract")


def test_model_path_reaches_the_speech_source(library, tmp_path):
    """`--model-path speech=DIR` picks the ASR model; a directory that is not one is refused,
    naming it, before any file is read."""
    from mmrec.errors import MmrecError

    missing = tmp_path / "no-whisper-here"
    cat = Catalog(tmp_path / "mp.lance", model_paths={"speech": str(missing)})
    with pytest.raises(MmrecError, match="no-whisper-here"):
        cat.ingest(library, preset=SET, options=IngestOptions(thumbnails=False))
