"""`mmrec ingest / query / stats / index` end to end through the CLI, on the generated
sample library with the offline-tiny set (real MiniLM text, random tiny CLIP/CLAP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_run import run

from mmrec.catalog.store import CatalogStore
from mmrec.media.samples import BROKEN_NAME, make_sample_library

PRESET = ["--preset", "offline-tiny"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return make_sample_library(tmp_path_factory.mktemp("lib"), include_broken=True)[0].parent


@pytest.fixture(scope="module")
def db(lib, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("db") / "cat.lance"
    _, out, err = run("ingest", lib, "--db", db, *PRESET, "--json")
    summary = json.loads(out)
    assert summary["ingested"] == 9 and summary["unchanged"] == 0
    broken = str((lib / BROKEN_NAME).resolve())
    assert [f["path"] for f in summary["failed"]] == [broken]
    assert "readable" in summary["failed"][0]["message"]
    assert f"failed {broken}" in err  # one line, as it happens
    assert set(summary["timings"]) == {"scan", "hash_probe", "decode", "embed", "write", "thumbs"}
    assert summary["thumbnails"]["made"] == 9 + summary["segments"] and not summary["thumbnails"]["failed"]
    return db


def query(db: Path, *args: str) -> list[dict]:
    _, out, _ = run("query", "--db", db, "--json", *args)
    return json.loads(out)


def test_stats_json_counts_kinds_and_extractors(db):
    _, out, _ = run("stats", "--db", db, "--json")
    stats = json.loads(out)
    assert stats["items"] == 9 and stats["by_kind"] == {"video": 5, "audio": 4}
    assert stats["errors"] == 1 and stats["segments"] > 9
    assert {e["modality"] for e in stats["extractors"]} == {"visual", "audio", "text"}
    assert all(len(e["fingerprint"]) >= 8 for e in stats["extractors"])
    assert stats["error_list"][0]["path"].endswith(BROKEN_NAME)


def test_missing_modalities_are_null(db):
    store = CatalogStore.open(db)
    rows = {Path(r["path"]).name: r for r in store.items.to_arrow().to_pylist()}
    audio_only, video_only = rows["jazz_piano_trio.mp3"], rows["city_timelapse.webm"]
    assert audio_only["visual_vec"] is None and audio_only["audio_vec"] is not None
    assert video_only["audio_vec"] is None and video_only["visual_vec"] is not None
    for r in (audio_only, video_only):
        fused = np.asarray(r["fused"])
        present = sum(r[f"{m}_vec"] is not None for m in ("visual", "audio", "text"))
        assert np.dot(fused, fused) == pytest.approx(present, rel=1e-4)  # unit blocks, zero gaps


def test_text_query_json_shape_and_right_item_first(db):
    hits = query(db, "--text", "football match goals", "-k", "3")
    assert len(hits) == 3 and hits[0]["path"].endswith("football_highlights.mp4")
    assert [h["rank"] for h in hits] == [1, 2, 3]
    for h in hits:
        assert {"rank", "item_id", "path", "score", "scores", "segment"} <= set(h)
        assert set(h["scores"]) == {"visual", "audio", "text"}
        assert h["score"] == pytest.approx(sum(h["scores"].values()), abs=1e-4)
        assert set(h["segment"]) >= {"start", "end"}
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]


def test_table_output_has_scores_path_and_segment(db):
    _, out, err = run("query", "--db", db, "--text", "rain sounds for sleep", "-k", "2")
    assert "rain_ambience.flac" in out and "visual" in out and "s text" in out
    assert "random weights" in err


def test_file_query_returns_near_duplicate_and_excludes_itself(db, lib):
    hits = query(db, "--file", lib / "pasta_night.mp4", "-k", "3")
    assert hits[0]["path"].endswith("pasta_night_small.mkv")
    assert not any(h["path"].endswith("pasta_night.mp4") for h in hits)
    by_item = query(db, "--item", hits[0]["item_id"], "-k", "1")
    assert by_item[0]["path"].endswith("pasta_night.mp4")


def test_uncatalogued_file_is_embedded_on_the_fly(db, lib, tmp_path):
    outside = tmp_path / "pasta_clip.mp4"  # a re-encoded excerpt: new bytes, same content
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", str(lib / "pasta_night.mp4"), "-t", "4",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(outside)], check=True)
    (tmp_path / "pasta_clip.json").write_text(json.dumps({"title": "spaghetti with tomato sauce"}))
    hits = query(db, "--file", outside, "-k", "2")
    assert {Path(h["path"]).name for h in hits} == {"pasta_night.mp4", "pasta_night_small.mkv"}
    # the same bytes as a catalogued file count as that file: it is excluded
    twin = tmp_path / "twin.mp4"
    shutil.copy(lib / "pasta_night.mp4", twin)
    assert not any(h["path"].endswith("pasta_night.mp4") for h in query(db, "--file", twin))


def test_segments_are_moments_inside_the_file(db):
    durations = {r["path"]: r["duration"] for r in CatalogStore.open(db).items.to_arrow().to_pylist()}
    hits = query(db, "--text", "jazz piano", "--segments", "-k", "8")
    assert hits and hits[0]["path"].endswith("jazz_piano_trio.mp3")
    for h in hits:
        seg = h["segment"]
        assert 0 <= seg["start"] < seg["end"] <= durations[h["path"]] + 0.05


def test_where_filters_and_reports_bad_sql(db):
    hits = query(db, "--text", "music", "-k", "10", "--where", "kind = 'audio' AND duration > 9")
    names = {Path(h["path"]).name for h in hits}
    assert names == {"jazz_piano_trio.mp3", "rain_ambience.flac", "cooking_podcast.m4a"}
    code, _, err = run("query", "--db", db, "--text", "x", "--where", "duraton > 1", ok=False)
    assert code != 0 and "duraton" in err and "not a valid filter" in err


@pytest.mark.parametrize("args, needle", [
    (["--text", "a", "-k", "0"], "--k"),
    (["--text", "a", "-k", "-3"], "--k"),
    (["--text", "   "], "empty"),
    (["--text", "a", "--file", "x.mp4"], "exactly one"),
    ([], "exactly one"),
    (["--item", "nope"], "no item 'nope'"),
    (["--text", "a", "--weights", "colour=1"], "bad weight"),
])
def test_bad_queries_fail_with_a_clear_message(db, args, needle):
    code, _, err = run("query", "--db", db, *args, ok=False)
    assert code != 0 and needle in err and "Traceback" not in err


def test_missing_catalog_says_what_to_do(tmp_path):
    code, _, err = run("stats", "--db", tmp_path / "none.lance", ok=False)
    assert code == 1 and "mmrec ingest" in err


def test_fingerprint_mismatch_names_the_extractor(db, lib, tmp_path):
    copy = tmp_path / "cat.lance"
    shutil.copytree(db, copy)
    store = CatalogStore.open(copy)
    described = store.meta()["extractors"]
    for e in described:
        if e["modality"] == "text":
            e["fingerprint"] = "0123456789abcdef"
    store.set_meta({"extractors": described})
    code, _, err = run("query", "--db", copy, "--text", "pasta", ok=False)
    assert code != 0 and "minilm" in err and "0123456789abcdef" in err and "re-ingest" in err
    # stored vectors need no extractor: a catalogued-file query still works
    assert query(copy, "--file", lib / "pasta_night.mp4", "-k", "1")


def test_rerun_is_a_no_op(db, lib):
    before = CatalogStore.open(db).items.version
    _, out, _ = run("ingest", lib, "--db", db, "--json")  # preset comes from the catalog
    summary = json.loads(out)
    assert summary["ingested"] == 0 and summary["unchanged"] == 9
    store = CatalogStore.open(db)
    assert store.counts()["items"] == 9 and store.items.version == before


def test_index_command_on_a_small_catalog_keeps_exact_search(db):
    _, out, _ = run("index", "--db", db, "--json")
    reports = json.loads(out)
    assert {r["table"] for r in reports} == {"items", "segments"}
    assert all(r["kind"] is None for r in reports)  # too few rows to train
    assert query(db, "--text", "football", "-k", "1")[0]["path"].endswith("football_highlights.mp4")


@pytest.fixture
def own(lib, tmp_path) -> tuple[Path, Path]:
    """A private copy of three library files and a catalog of them."""
    d = tmp_path / "lib"
    d.mkdir()
    for name in ("pasta_night.mp4", "pasta_night.json", "guitar_lesson.wav", "guitar_lesson.json",
                 "rain_ambience.flac", "rain_ambience.json"):
        shutil.copy2(lib / name, d / name)
    db = tmp_path / "own.lance"
    run("ingest", d, "--db", db, *PRESET)
    return d, db


def test_changed_touched_and_deleted_files(own, lib):
    d, db = own
    store = CatalogStore.open(db)
    old = {Path(p).name: r["id"] for p, r in store.file_index().items()}
    (d / "pasta_night.mp4").touch()  # same bytes, new mtime: not embedded again
    shutil.copyfile(lib / "football_highlights.mp4", d / "guitar_lesson.wav")  # new content
    (d / "rain_ambience.flac").unlink()
    _, out, _ = run("ingest", d, "--db", db, "--json")
    summary = json.loads(out)
    assert summary["ingested"] == 1 and summary["unchanged"] == 1 and summary["removed"] == 1
    now = {Path(p).name: r["id"] for p, r in CatalogStore.open(db).file_index().items()}
    assert set(now) == {"pasta_night.mp4", "guitar_lesson.wav"}
    assert now["pasta_night.mp4"] == old["pasta_night.mp4"]
    assert now["guitar_lesson.wav"] != old["guitar_lesson.wav"]
    store = CatalogStore.open(db)
    seg_items = set(store.segments.to_arrow().column("item_id").to_pylist())
    assert seg_items == set(now.values())  # no orphan segments of the old content or the gone file


def test_extractor_subset_keeps_the_other_modalities(own):
    d, db = own
    store = CatalogStore.open(db)
    path = str((d / "pasta_night.mp4").resolve())
    before = store.find_item(path)
    # Pretend the visual extractor changed since: only it needs to run again.
    fps = json.loads(before["fingerprints"])
    store.items.update(where=f"id = '{before['id']}'",
                       values={"fingerprints": json.dumps({**fps, "visual": "stale"})})
    _, out, _ = run("ingest", d, "--db", db, "--extractors", "clip", "--json")
    summary = json.loads(out)
    assert summary["ingested"] == 1 and summary["unchanged"] == 2
    after = CatalogStore.open(db).find_item(path)
    assert json.loads(after["fingerprints"]) == fps
    for m in ("audio", "text"):
        np.testing.assert_array_equal(after[f"{m}_vec"], before[f"{m}_vec"])
    modalities = set(CatalogStore.open(db).segments.search().where(f"item_id = '{after['id']}'")
                     .limit(None).to_arrow().column("modality").to_pylist())
    assert modalities == {"visual", "audio", "text"}
    code, _, err = run("ingest", d, "--db", db, "--extractors", "ocr", ok=False)
    assert code != 0 and "ocr" in err and "clip (visual)" in err


def test_messy_directory_completes_with_one_line_per_bad_file(lib, tmp_path):
    d = tmp_path / "messy"
    d.mkdir()
    shutil.copy(lib / "guitar_lesson.wav", os.fsdecode(bytes(d) + b"/caf\xe9 lesson.wav"))
    shutil.copy(lib / "rain_ambience.flac", d / ("r" * 240 + ".flac"))
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp3").write_text("not audio\n" * 20)
    (d / "loop").mkdir()
    (d / "loop" / "up").symlink_to("..")
    db = tmp_path / "messy.lance"
    code, out, err = run("ingest", d, "--db", db, *PRESET, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["ingested"] == 2
    failed = {Path(f["path"]).name: f["message"] for f in summary["failed"]}
    assert set(failed) == {"empty.mp4", "notes.mp3"} and "empty" in failed["empty.mp4"]
    assert sum(line.startswith("failed ") for line in err.splitlines()) == 2
    paths = set(CatalogStore.open(db).file_index())
    assert str(d.resolve() / "caf\\xe9 lesson.wav") in paths  # stored as valid UTF-8
    again = json.loads(run("ingest", d, "--db", db, "--json")[1])
    assert again["ingested"] == 0 and again["unchanged"] == 2 and again["removed"] == 0
    assert query(db, "--text", "guitar chords", "-k", "1")[0]["path"].endswith("caf\\xe9 lesson.wav")
