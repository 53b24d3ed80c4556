"""probe(): streams, durations, rotation, tags, and one typed error per broken file."""

from __future__ import annotations

import pytest

from mmrec import errors
from mmrec.media import probe


def test_mp4_streams_and_duration(media):
    info = probe(media["mp4"])
    assert info.kind == "video"
    assert "mp4" in info.container
    assert info.duration == pytest.approx(6.0, abs=0.1)
    (v,) = info.video
    assert (v.codec, v.width, v.height, v.rotation) == ("h264", 320, 240, 0)
    assert v.fps == pytest.approx(25.0)
    (a,) = info.audio
    assert (a.codec, a.sample_rate, a.channels) == ("aac", 44100, 1)
    assert info.size_bytes == media["mp4"].stat().st_size


@pytest.mark.parametrize(
    ("name", "vcodec", "acodec", "duration"),
    [("mkv", "h264", "vorbis", 4.0), ("webm", "vp8", "opus", 3.0)],
)
def test_other_containers(media, name, vcodec, acodec, duration):
    info = probe(media[name])
    assert info.video[0].codec == vcodec
    assert info.audio[0].codec == acodec
    assert info.duration == pytest.approx(duration, abs=0.1)


def test_video_only_and_audio_only(media):
    silent = probe(media["video_only"])
    assert silent.has_video and not silent.has_audio
    for name, rate, channels in [("wav", 48000, 2), ("mp3", 44100, 1), ("flac", 22050, 1)]:
        info = probe(media[name])
        assert info.kind == "audio" and not info.video, name
        assert (info.audio[0].sample_rate, info.audio[0].channels) == (rate, channels)
    assert probe(media["wav"]).duration == pytest.approx(12.0, abs=0.05)


def test_rotation_and_display_size(media):
    portrait = probe(media["portrait"]).video[0]
    assert (portrait.width, portrait.height, portrait.rotation) == (180, 320, 0)
    rotated = probe(media["rotated"]).video[0]
    assert (rotated.width, rotated.height) == (320, 180)
    assert rotated.rotation in (90, 270)
    assert rotated.display_size == (180, 320)


def test_tags_are_lowercased_and_exposed(media):
    info = probe(media["mp3"])
    assert info.tag("title") == "Pink Noise Study"
    assert info.tag("artist") == "Test Artist"
    assert info.tag("genre") == "Ambient"


def test_subtitle_stream_is_listed(media):
    info = probe(media["embedded_subs"])
    (s,) = info.subtitles
    assert s.codec == "subrip" and s.is_text and s.language == "eng"
    assert info.tag("language") == "eng"


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("empty", errors.EmptyFileError, "empty"),
        ("random", errors.UnreadableMediaError, "not a readable media file"),
        ("text_as_media", errors.UnreadableMediaError, "not a readable media file"),
        ("truncated", errors.UnreadableMediaError, "not a readable media file"),
        ("no_stream", errors.NoMediaStreamError, "no audio or video stream"),
    ],
)
def test_broken_files_raise_one_clear_typed_error(media, name, error, words):
    with pytest.raises(error) as exc:
        probe(media[name])
    message = str(exc.value)
    assert type(exc.value) is error
    assert message.startswith(str(media[name]))
    assert words in message
    assert "\n" not in message
    assert isinstance(exc.value, errors.MediaError)


def test_missing_file(tmp_path):
    with pytest.raises(errors.MediaNotFoundError, match="no such file"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(errors.MediaNotFoundError, match="not a regular file"):
        probe(tmp_path)


def test_probe_timeout_is_enforced(media, monkeypatch):
    with pytest.raises(errors.FfmpegTimeoutError, match="timed out"):
        probe(media["mp4"], timeout=0.0001)


def test_missing_ffmpeg_gives_install_hint(media, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(errors.FfmpegMissingError, match="apt-get install ffmpeg"):
        probe(media["mp4"])
