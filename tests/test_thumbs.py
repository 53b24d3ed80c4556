"""Poster thumbnails: made at ingest (one ffmpeg per file), by `mmrec index` for catalogs
without them, on demand by `Catalog.thumbnail`; ids checked before they become paths; a
file that cannot be thumbnailed is a counted failure; removed items lose their folder.

The media is generated at test time (a few seconds each); the offline-tiny models load
once for the module."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_run import run

import mmrec
from mmrec.catalog import (
    CatalogStore,
    IngestOptions,
    ThumbnailIdError,
    ThumbnailNotFoundError,
    build_thumbnails,
    thumb_path,
    thumbs_root,
)
from mmrec.errors import ConfigError, DecodeError, MediaNotFoundError
from mmrec.media import frame_thumbnails, waveform_thumbnails

PRESET = "offline-tiny"


@pytest.fixture(scope="module", autouse=True)
def _models_load_once():
    """Every Catalog of this module shares one load of each extractor (8 s each time else)."""
    import mmrec.extractors as ext

    real, cache = ext.load_extractor, {}

    def cached(preset, **kwargs):
        key = (str(preset), repr(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(preset, **kwargs)
        return cache[key]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ext, "load_extractor", cached)
        yield


@pytest.fixture(scope="module")
def src(tmp_path_factory, run_ffmpeg) -> dict[str, Path]:
    """A landscape video with sound, a portrait video without, a 12 s tone (audio only)."""
    d = tmp_path_factory.mktemp("thumb-src")
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=4", *h264, "-c:a", "aac",
               "-shortest", str(d / "clip.mp4"))
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=180x320:rate=25:duration=3", *h264,
               str(d / "portrait.mp4"))
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=330:sample_rate=22050:duration=12",
               str(d / "tone.wav"))
    return {p.stem: p for p in d.iterdir()}


def _lib(tmp: Path, src: dict[str, Path], *names: str) -> Path:
    d = tmp / "lib"
    d.mkdir()
    for n in names:
        shutil.copy2(src[n], d / src[n].name)
    return d


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, src):
    """The three files ingested with thumbnails (the default)."""
    lib = _lib(tmp_path_factory.mktemp("main"), src, "clip", "portrait", "tone")
    catalog = mmrec.Catalog(tmp_path_factory.mktemp("db") / "cat.lance")
    summary = catalog.ingest(lib, preset=PRESET)
    assert len(summary.ingested) == 3 and not summary.failed
    return lib, catalog, summary


def _rows(catalog) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """{file name: item row}, {item id: seg ids}."""
    store = CatalogStore.open(catalog.path)
    items = {Path(r["path"]).name: r for r in store.columns(store.items, ["id", "path", "kind"]).to_pylist()}
    segs: dict[str, list[str]] = {}
    for r in store.columns(store.segments, ["seg_id", "item_id"]).to_pylist():
        segs.setdefault(r["item_id"], []).append(r["seg_id"])
    return items, segs


def _jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) of a real JPEG file (magic bytes, then ffprobe)."""
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9", path
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["streams"][0]
    assert s["codec_name"] == "mjpeg"
    return s["width"], s["height"]


def _rgb(path: Path) -> tuple[int, int, bytes]:
    w, h = _jpeg_size(path)
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24",
                          "pipe:"], capture_output=True, check=True).stdout
    return w, h, raw


# -- ingest ---------------------------------------------------------------------------
def test_ingest_makes_a_jpeg_for_every_item_and_segment(ingested):
    lib, catalog, summary = ingested
    items, segs = _rows(catalog)
    expected = {"clip.mp4": (320, 240), "portrait.mp4": (320, 568), "tone.wav": (320, 180)}
    total = 0
    for name, row in items.items():
        paths = [thumb_path(catalog.path, row["id"])] + [thumb_path(catalog.path, row["id"], s)
                                                         for s in segs[row["id"]]]
        assert len(paths) >= 2  # a poster and at least one segment
        for p in paths:
            assert p.parent == catalog.path / "_thumbs" / row["id"]
            assert _jpeg_size(p) == expected[name], p
        total += len(paths)
    assert summary.thumbs is not None and summary.thumbs.made == total and not summary.thumbs.failed
    assert "thumbs" in summary.timings and summary.timings["thumbs"] > 0
    leftovers = [p for p in thumbs_root(catalog.path).rglob("*") if p.is_file() and p.suffix != ".jpg"]
    assert leftovers == []  # no temporary files


def test_an_audio_only_item_gets_a_waveform_poster(ingested):
    _, catalog, _ = ingested
    items, segs = _rows(catalog)
    tone = items["tone.wav"]
    assert tone["kind"] == "audio"
    w, h, raw = _rgb(catalog.thumbnail(tone["id"]))
    assert (w, h) == (320, 180)
    px = lambda x, y: raw[(y * w + x) * 3:(y * w + x) * 3 + 3]  # noqa: E731
    assert max(px(2, 2)) < 40  # dark background above the wave
    r, g, b = px(w // 2, h // 2)
    assert b > 150 and b > r + 40  # the blue wave through the middle
    audio = [s for s in segs[tone["id"]] if ":audio:" in s]
    assert len(audio) == 2  # 12 s in 10 s windows; each has its own waveform
    a0, a1 = (catalog.path / "_thumbs" / tone["id"] / f"audio-{i}.jpg" for i in (0, 1))
    assert a0.read_bytes() != a1.read_bytes()


def test_no_thumbnails_makes_none_and_index_makes_them(tmp_path, src):
    lib = _lib(tmp_path, src, "clip", "tone")
    db = tmp_path / "cat.lance"
    _, out, _ = run("ingest", lib, "--db", db, "--preset", PRESET, "--no-thumbnails", "--json")
    summary = json.loads(out)
    assert summary["ingested"] == 2 and summary["thumbnails"] is None
    assert "thumbs" not in summary["timings"]
    assert not (db / "_thumbs").exists()

    catalog = mmrec.Catalog(db)
    catalog.index()  # a catalog from before thumbnails: index makes them
    report = catalog.last_thumbnails
    items, segs = _rows(catalog)
    want = sum(1 + len(segs[r["id"]]) for r in items.values())
    assert report.items == 2 and report.made == want and report.kept == 0 and not report.failed
    for row in items.values():
        assert thumb_path(db, row["id"]).is_file()
        assert all(thumb_path(db, row["id"], s).is_file() for s in segs[row["id"]])

    _, out, _ = run("index", "--db", db)  # again: every one is kept, and it says so
    assert f"thumbnails: 2 items, 0 made, {want} kept, 0 files failed" in out


def test_ingest_without_thumbnails_through_the_api(tmp_path, src):
    lib = _lib(tmp_path, src, "portrait")
    catalog = mmrec.Catalog(tmp_path / "cat.lance")
    summary = catalog.ingest(lib, preset=PRESET, options=IngestOptions(thumbnails=False))
    assert summary.thumbs is None and not (catalog.path / "_thumbs").exists()


# -- on demand ------------------------------------------------------------------------
def test_thumbnail_of_a_missing_one_makes_it(ingested):
    _, catalog, _ = ingested
    items, segs = _rows(catalog)
    item = items["clip.mp4"]["id"]
    seg = next(s for s in segs[item] if ":visual:" in s)
    for p in (thumb_path(catalog.path, item), thumb_path(catalog.path, item, seg)):
        p.unlink()
    assert _jpeg_size(catalog.thumbnail(item)) == (320, 240)
    got = catalog.thumbnail(item, seg)
    assert got == thumb_path(catalog.path, item, seg) and _jpeg_size(got) == (320, 240)
    mtime = got.stat().st_mtime_ns
    assert catalog.thumbnail(item, seg).stat().st_mtime_ns == mtime  # present: kept as is


@pytest.mark.parametrize("item, seg", [
    ("../../etc/passwd", None),
    ("..", None),
    ("", None),
    ("0" * 31, None),
    ("A" * 32, None),  # ids are lowercase hex
    ("0" * 32 + "/x", None),
    ("0" * 32, "../../etc/passwd"),
    ("0" * 32, "0" * 32 + ":visual:1/../../x"),
    ("0" * 32, "0" * 32 + ":../visual:1"),
    ("0" * 32, "0" * 32 + ":visual:-1"),
])
def test_bad_ids_are_refused_before_they_become_paths(ingested, item, seg):
    _, catalog, _ = ingested
    with pytest.raises(ThumbnailIdError) as e:
        catalog.thumbnail(item, seg)
    assert isinstance(e.value, ConfigError)
    with pytest.raises(ThumbnailIdError):
        thumb_path(catalog.path, item, seg)


def test_a_segment_of_another_item_is_refused(ingested):
    _, catalog, _ = ingested
    items, segs = _rows(catalog)
    clip, tone = items["clip.mp4"]["id"], items["tone.wav"]["id"]
    with pytest.raises(ThumbnailIdError, match=f"belongs to item {tone}, not {clip}"):
        catalog.thumbnail(clip, segs[tone][0])


def test_unknown_ids_are_not_found(ingested):
    _, catalog, _ = ingested
    items, _ = _rows(catalog)
    clip = items["clip.mp4"]["id"]
    with pytest.raises(ThumbnailNotFoundError, match="no item"):
        catalog.thumbnail("f" * 32)
    with pytest.raises(ThumbnailNotFoundError, match="no segment"):
        catalog.thumbnail(clip, f"{clip}:visual:99")
    assert not (catalog.path / "_thumbs" / ("f" * 32)).exists()
    assert isinstance(ThumbnailNotFoundError("x"), LookupError)


# -- failures and clean-up ------------------------------------------------------------
def test_a_file_deleted_after_ingest_is_a_counted_failure(tmp_path, src, caplog):
    lib = _lib(tmp_path, src, "clip", "tone")
    catalog = mmrec.Catalog(tmp_path / "cat.lance")
    catalog.ingest(lib, preset=PRESET, options=IngestOptions(thumbnails=False))
    (lib / "clip.mp4").unlink()
    store = CatalogStore.open(catalog.path)
    items, _ = _rows(catalog)
    with caplog.at_level(logging.WARNING, logger="mmrec.catalog.thumbs"):
        report = build_thumbnails(store, catalog.path)
    assert len(report.failed) == 1
    f = report.failed[0]
    assert f.item_id == items["clip.mp4"]["id"] and f.path == str(lib / "clip.mp4")
    assert "no such file" in f.reason and f.missing >= 2
    assert report.made > 0 and thumb_path(catalog.path, items["tone.wav"]["id"]).is_file()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and str(lib / "clip.mp4") in lines[0] and "no such file" in lines[0]
    with pytest.raises(MediaNotFoundError):  # on demand, the error names the file
        catalog.thumbnail(items["clip.mp4"]["id"])


def test_a_corrupt_file_is_a_counted_failure(tmp_path, src):
    lib = _lib(tmp_path, src, "clip")
    catalog = mmrec.Catalog(tmp_path / "cat.lance")
    catalog.ingest(lib, preset=PRESET, options=IngestOptions(thumbnails=False))
    (lib / "clip.mp4").write_bytes(b"not a video any more" * 100)
    report = build_thumbnails(CatalogStore.open(catalog.path))
    assert len(report.failed) == 1 and report.made == 0 and "thumbnail failed" in report.failed[0].reason


def test_a_pruned_item_loses_its_folder(tmp_path, src):
    lib = _lib(tmp_path, src, "clip", "tone")
    catalog = mmrec.Catalog(tmp_path / "cat.lance")
    catalog.ingest(lib, preset=PRESET)
    items, _ = _rows(catalog)
    gone, kept = (catalog.path / "_thumbs" / items[n]["id"] for n in ("clip.mp4", "tone.wav"))
    assert gone.is_dir() and kept.is_dir()
    (lib / "clip.mp4").unlink()
    summary = catalog.ingest(lib, preset=PRESET)
    assert summary.removed == 1
    assert not gone.exists() and (kept / "poster.jpg").is_file()


def test_index_removes_folders_of_items_not_in_the_catalog(ingested):
    _, catalog, _ = ingested
    stray = catalog.path / "_thumbs" / ("e" * 32)
    stray.mkdir()
    (stray / "poster.jpg").write_bytes(b"\xff\xd8\xff")
    other = catalog.path / "_thumbs" / "not-an-id"  # not named like an item: left alone
    other.mkdir()
    report = build_thumbnails(CatalogStore.open(catalog.path))
    assert report.removed == 1 and not stray.exists() and other.is_dir() and report.made == 0
    other.rmdir()


# -- the media layer ------------------------------------------------------------------
def test_frames_one_process_many_times_past_the_end_and_rotation(tmp_path, media):
    outs = [tmp_path / f"f{i}.jpg" for i in range(4)]
    made = frame_thumbnails(media["mp4"], [(0.5, outs[0]), (3.0, outs[1]), (3.0, outs[2]),
                                           (999.0, outs[3])], width=160, duration=None)
    assert sorted(made) == sorted(outs)
    assert all(_jpeg_size(p) == (160, 120) for p in outs)
    assert outs[1].read_bytes() == outs[2].read_bytes()  # same time: one picture
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in outs]  # no temp files
    rotated = tmp_path / "rot.jpg"
    frame_thumbnails(media["rotated"], [(1.0, rotated)])  # 320x180 coded, shown upright 180x320
    assert _jpeg_size(rotated) == (320, 568)


def test_media_errors_name_the_file(tmp_path, media):
    with pytest.raises(DecodeError, match="no video stream") as e:
        frame_thumbnails(media["wav"], [(1.0, tmp_path / "a.jpg")])
    assert e.value.path == str(media["wav"])
    with pytest.raises(DecodeError, match="thumbnail failed"):
        waveform_thumbnails(media["text_as_media"], [(0.0, None, tmp_path / "b.jpg")])
    with pytest.raises(MediaNotFoundError):
        frame_thumbnails(tmp_path / "missing.mp4", [(1.0, tmp_path / "c.jpg")])
    with pytest.raises(ConfigError):
        frame_thumbnails(media["mp4"], [(1.0, tmp_path / "d.jpg")], width=0)
    assert list(tmp_path.iterdir()) == []
