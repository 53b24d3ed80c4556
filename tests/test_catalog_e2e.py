"""End to end on the generated sample library with the offline-tiny extractor set."""

from __future__ import annotations

import pytest

import mmrec
from mmrec.media.samples import BROKEN_NAME, make_sample_library


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    lib = make_sample_library(tmp_path_factory.mktemp("lib"), include_broken=True)[0].parent
    catalog = mmrec.Catalog(tmp_path_factory.mktemp("db") / "cat.lance")
    summary = catalog.ingest(lib, preset="offline-tiny")
    return lib, catalog, summary


def test_ingest_counts_and_failures(built):
    lib, catalog, summary = built
    assert len(summary.ingested) == 9 and summary.unchanged == 0
    assert [f.path for f in summary.failed] == [str((lib / BROKEN_NAME).resolve())]
    stats = catalog.stats()
    assert stats["items"] == 9 and stats["by_kind"] == {"video": 5, "audio": 4}
    assert stats["errors"] == 1 and stats["segments"] == summary.segments > 9


def test_text_query_finds_the_right_item_first(built):
    _, catalog, _ = built
    result = catalog.search(text="football match goals", k=3)
    assert result.hits[0].path.endswith("football_highlights.mp4")
    assert any("random weights" in n for n in result.notes)


def test_file_query_returns_near_duplicate_first_and_excludes_itself(built):
    lib, catalog, _ = built
    hits = catalog.search(file=lib / "pasta_night.mp4", k=3).hits
    assert hits[0].path.endswith("pasta_night_small.mkv")
    assert all(not h.path.endswith("pasta_night.mp4") for h in hits)


def test_segments_lie_inside_the_file_and_where_filters(built):
    _, catalog, _ = built
    hits = catalog.search(text="music", k=5, where="kind = 'audio' AND duration > 9").hits
    assert hits and all(h.kind == "audio" for h in hits)
    for h in hits:
        assert h.segment is not None and 0 <= h.segment.start < h.segment.end
    assert {h.path.rsplit("/", 1)[-1] for h in hits} <= {
        "jazz_piano_trio.mp3", "rain_ambience.flac", "cooking_podcast.m4a"}


def test_rerun_is_a_no_op(built):
    lib, catalog, _ = built
    again = catalog.ingest(lib, preset="offline-tiny")
    assert again.ingested == [] and again.unchanged == 9
    assert catalog.stats()["items"] == 9 and catalog.stats()["errors"] == 1


def test_a_text_query_loads_only_the_towers_it_weights(built):
    """`--modality text` (or weights naming only text) needs MiniLM alone: CLIP and CLAP,
    with open_clip and their towers, stay unloaded (seconds of a cold query)."""
    import subprocess
    import sys

    _, catalog, _ = built
    code = ("import sys, mmrec; c = mmrec.Catalog(sys.argv[1]); "
            "hits = c.search(text='football match goals', k=3, modality='text').hits; "
            "loaded = sorted(e.modality for e in c.extractors(modalities=['text'])); "
            "print(hits[0].path.rsplit('/', 1)[-1], loaded, "
            "'open_clip' in sys.modules, 'transformers.models.clap' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(catalog.path)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["football_highlights.mp4", "['text']", "False", "False"]
    assert [e.modality for e in catalog.extractors()] == ["visual", "audio", "text"]
