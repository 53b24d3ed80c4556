"""Sidecar text: json/txt/srt/vtt files, embedded subtitles, container tags, titles."""

from __future__ import annotations

import json

import pytest

from mmrec.media import parse_subtitles, probe, read_text_meta, readable_title


def test_sidecar_files_are_all_read(media):
    path = media["sidecar"]
    meta = read_text_meta(path, probe(path))
    assert (meta.title, meta.title_source) == ("Pasta night", "sidecar")
    assert meta.description == "We cook spaghetti. Extra notes about the dish."
    assert meta.tags == ("food", "italian")
    assert [(c.start, c.end, c.text) for c in meta.subtitles] == [
        (0.0, 1.5, "Boil the water"), (1.5, 2.9, "Add salt")]
    assert len(meta.sources) == 3
    assert meta.fields()["subtitles"] == "Boil the water Add salt"


def test_embedded_subtitles_are_extracted(media):
    path = media["embedded_subs"]
    meta = read_text_meta(path, probe(path))
    assert [(c.start, c.end, c.text) for c in meta.subtitles] == [
        (0.5, 2.0, "Hello pasta world"), (2.5, 3.9, "Tomato sauce")]


def test_container_tags_fill_title_and_music_fields(media):
    meta = read_text_meta(media["mp3"], probe(media["mp3"]))
    assert (meta.title, meta.title_source) == ("Pink Noise Study", "tag")
    assert (meta.artist, meta.genre) == ("Test Artist", "Ambient")


def test_title_from_file_name(media):
    meta = read_text_meta(media["wav"], probe(media["wav"]))
    assert (meta.title, meta.title_source) == ("tone", "filename")


@pytest.mark.parametrize(
    ("stem", "title"),
    [("my_holiday-video.2019", "my holiday video 2019"), ("CookingShow", "Cooking Show"),
     ("a__b", "a b"), ("___", "___")],
)
def test_readable_title(stem, title):
    assert readable_title(stem) == title


def test_srt_parsing_and_language_variant(tmp_path):
    media = tmp_path / "talk.mp4"
    media.write_bytes(b"")
    (tmp_path / "talk.en.srt").write_text(
        "1\n00:01:02,250 --> 00:01:04,000\nFirst <i>line</i>\nsecond part\n\n")
    meta = read_text_meta(media)
    assert [(c.start, c.end, c.text) for c in meta.subtitles] == [
        (62.25, 64.0, "First line second part")]
    assert parse_subtitles(tmp_path / "talk.en.srt")[0].start == 62.25


def test_broken_sidecars_become_warnings_not_errors(tmp_path):
    media = tmp_path / "clip.mp4"
    media.write_bytes(b"")
    (tmp_path / "clip.json").write_text("{not json")
    (tmp_path / "clip.srt").write_text("this is not a subtitle file at all")
    meta = read_text_meta(media)
    assert meta.title == "clip"
    assert len(meta.warnings) >= 1
    assert any("clip.json" in w for w in meta.warnings)


def test_json_tags_as_string(tmp_path):
    media = tmp_path / "x.wav"
    media.write_bytes(b"")
    (tmp_path / "x.json").write_text(json.dumps({"tags": "jazz; live, piano"}))
    assert read_text_meta(media).tags == ("jazz", "live", "piano")
