"""On-screen text (the "screen" text source): real Tesseract on videos drawn with ffmpeg."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from mmrec.extractors.base import MediaItem
from mmrec.extractors.screen_text import ScreenTextConfig, ScreenTextSource, merge_cues, to_gray
from mmrec.extractors.timed_text import SOURCES

from mmrec import errors
from mmrec.media import probe


def test_tesseract_is_installed():
    """make test installs it; without it every test here fails with this reason first."""
    assert shutil.which("tesseract"), "tesseract is missing: apt-get install tesseract-ocr tesseract-ocr-eng"

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
INTERVAL = 2.0  # the default 0.5 fps


def _font() -> str:
    if DEJAVU.is_file():
        return str(DEJAVU)
    found = subprocess.run(["fc-list", ":lang=en", "file"], capture_output=True, text=True).stdout.split()
    if not found:
        pytest.fail("no Latin font for drawtext: apt-get install fonts-dejavu-core")
    return found[0].rstrip(":")


def _text(word: str, start: float, end: float, font: str, size: int = 40) -> str:
    return (f"drawtext=fontfile={font}:text='{word}':fontsize={size}:fontcolor=black:"
            f"x=(w-tw)/2:y=(h-th)/2:enable='between(t,{start},{end})'")


def _item(path: Path) -> MediaItem:
    return MediaItem(str(path), probe(path))


def _has(transcript_or_cues, words: str) -> list:
    cues = getattr(transcript_or_cues, "cues", transcript_or_cues)
    return [c for c in cues if words.lower() in " ".join(c.text.lower().split())]


@pytest.fixture(scope="module")
def eng() -> ScreenTextSource:
    """English only: chi_sim doubles Tesseract's time, and these clips hold no Chinese."""
    return ScreenTextSource.from_config({"languages": ["eng"]})


@pytest.fixture(scope="module")
def clips(tmp_path_factory, run_ffmpeg) -> dict[str, Path]:
    """Generated clips: two words with a blank gap, a truncated copy, text-free textures."""
    d = tmp_path_factory.mktemp("screen")
    font = _font()
    words = f"{_text('QUARTERLY REVENUE', 0, 4, font)},{_text('ZEBRAMIGRATION', 6, 10, font)}"
    out = {"words": d / "words.mkv", "noise": d / "noise.mp4", "mandel": d / "mandel.mp4",
           "testsrc": d / "testsrc.mp4", "tone": d / "tone.wav", "cover": d / "cover.mp3"}
    run_ffmpeg("-f", "lavfi", "-i", "color=c=white:s=640x360:d=10:r=10", "-vf", words, *H264, "-g", "10",
               str(out["words"]))
    run_ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=640x360:d=6:r=10", "-vf", "noise=alls=80:allf=t+u",
               *H264, str(out["noise"]))
    run_ffmpeg("-f", "lavfi", "-i", "mandelbrot=s=640x360:r=10", "-t", "6", *H264, str(out["mandel"]))
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=s=640x360:d=6:r=10", *H264, str(out["testsrc"]))
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", str(out["tone"]))
    run_ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-f", "lavfi", "-i",
               "color=c=red:s=64x64:d=1", "-map", "0:a", "-map", "1:v", "-frames:v", "1", "-c:v", "png",
               "-disposition:v", "attached_pic", "-c:a", "libmp3lame", str(out["cover"]))
    # Cut the Matroska file at the first packet at or after 5 s: the header still says
    # 10 s, the first word's frames are whole, the rest of the stream is missing.
    packets = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=pts_time,pos",
         "-of", "csv=p=0", str(out["words"])], capture_output=True, text=True, check=True).stdout
    cut = next(int(pos) for t, pos in (ln.split(",")[:2] for ln in packets.splitlines()) if float(t) >= 5.0)
    data = out["words"].read_bytes()
    (d / "truncated.mkv").write_bytes(data[:cut])
    (d / "headless.mkv").write_bytes(data[:3000])
    out["truncated"], out["headless"] = d / "truncated.mkv", d / "headless.mkv"
    return out


def test_two_words_each_in_one_merged_cue_over_its_time_window(eng, clips):
    transcript = eng.read(_item(clips["words"]))
    assert transcript.source == "screen" and transcript.language == "eng"
    revenue, zebra = _has(transcript, "quarterly revenue"), _has(transcript, "zebramigration")
    assert len(revenue) == 1 and len(zebra) == 1, transcript.cues
    assert revenue[0] is not zebra[0]
    assert len(transcript.cues) == 2, transcript.cues  # the blank gap holds no cue
    (r,), (z,) = revenue, zebra
    assert abs(r.start - 0.0) <= INTERVAL and abs(r.end - 4.0) <= INTERVAL, r
    assert abs(z.start - 6.0) <= INTERVAL and abs(z.end - 10.0) <= INTERVAL, z
    assert r.end <= z.start


class _Counting(ScreenTextSource):
    """The real source, counting the frames it hands to Tesseract."""

    def __init__(self, config: ScreenTextConfig):
        super().__init__(config)
        self.images = 0

    def read_images(self, images):
        self.images += len(images)
        return super().read_images(images)


def test_identical_frames_reuse_text_instead_of_ocr(clips):
    source = _Counting(ScreenTextConfig(languages=("eng",), fps=2.0))
    transcript = source.read(_item(clips["words"]))
    assert len(_has(transcript, "zebramigration")) == 1
    # 20 frames at 2 fps, but only three pictures: the first word, blank, the second word
    # (plus a frame or two where a word appears or disappears).
    assert 3 <= source.images <= 6, source.images


def test_two_threads_read_at_once_and_agree(eng, clips):
    item = _item(clips["words"])
    results: list = [None, None]

    def work(i: int) -> None:
        results[i] = eng.read(item)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results[0] is not None and results[0] == results[1]


@pytest.mark.parametrize("clip", ["noise", "mandel"])
def test_textures_without_text_give_no_cues(eng, clips, clip):
    assert eng.read(_item(clips[clip])).cues == ()


def test_test_pattern_gives_no_cue_with_words_it_does_not_show(eng, clips):
    transcript = eng.read(_item(clips["testsrc"]))
    for words in ("quarterly", "revenue", "zebra"):
        assert not _has(transcript, words)
    for cue in transcript.cues:  # only its clock and digits are text
        assert sum(ch.isalpha() for ch in cue.text) <= 2, cue


def test_audio_only_files_do_not_apply(eng, clips):
    cover = _item(clips["cover"])
    assert cover.info.video == () and not eng.applies_to(cover)
    assert not eng.applies_to(_item(clips["tone"]))
    assert eng.read(cover).cues == ()
    assert eng.applies_to(_item(clips["words"]))


def test_truncated_file_keeps_the_text_before_the_cut(eng, clips, caplog):
    with caplog.at_level(logging.WARNING, "mmrec.extractors.screen_text"):
        transcript = eng.read(_item(clips["truncated"]))
    assert len(_has(transcript, "quarterly revenue")) == 1
    assert not _has(transcript, "zebramigration")
    assert any("truncated.mkv" in r.getMessage() and "decode" in r.getMessage() for r in caplog.records)


def test_file_that_decodes_nothing_raises_the_media_error(eng, clips):
    with pytest.raises(errors.MediaError, match="headless.mkv"):
        eng.read(_item(clips["headless"]))


def _frame(word: str, font: str, tmp_path: Path, run_ffmpeg) -> np.ndarray:
    out = tmp_path / f"{word}.rgb"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=white:s=480x120:d=1:r=1", "-vf",
               f"drawtext=fontfile={font}:text='{word}':fontsize=40:fontcolor=black:x=20:y=40",
               "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", str(out))
    return np.frombuffer(out.read_bytes(), dtype=np.uint8).reshape(120, 480, 3)


def test_a_bad_frame_or_image_is_skipped_and_the_others_are_read(eng, tmp_path, run_ffmpeg, caplog):
    font = _font()
    first = _frame("HARBOUR", font, tmp_path, run_ffmpeg)
    second = _frame("LIGHTHOUSE", font, tmp_path, run_ffmpeg)
    # A truncated PGM makes Tesseract fail on the whole batch; each image is then read alone.
    good = [b"P5 480 120 255\n" + to_gray(f).tobytes() for f in (first, second)]
    bad = b"P5 480 120 255\n" + b"\x00" * 100
    results = eng.read_images([good[0], bad, good[1]])
    assert results[1] is None
    assert "HARBOUR" in results[0][0] and "LIGHTHOUSE" in results[2][0]
    # A frame of the wrong shape is logged and skipped; the frames around it still count.
    frames = [(0.0, first), (2.0, np.zeros((7,), np.uint8)), (4.0, second)]
    with caplog.at_level(logging.WARNING, "mmrec.extractors.screen_text"):
        cues = eng.cues_from_frames(frames, INTERVAL, "clip.mp4")
    assert [c.text for c in cues] == ["HARBOUR", "LIGHTHOUSE"]
    assert any("clip.mp4" in r.getMessage() and "2.00s" in r.getMessage() for r in caplog.records)


def test_merge_cues_joins_near_identical_readings_and_splits_on_gaps():
    obs = [(0.0, "Quarterly  Revenue", 90), (2.0, "quarterly revenu", 70), (4.0, "", 0),
           (6.0, "Quarterly Revenue", 91), (8.0, "Something else", 80)]
    cues = merge_cues(obs, 2.0, 0.8, duration=9.0)
    assert [(c.start, c.end, c.text) for c in cues] == [
        (0.0, 4.0, "Quarterly Revenue"), (6.0, 8.0, "Quarterly Revenue"), (8.0, 9.0, "Something else")]


def test_missing_tesseract_is_one_clear_error(tmp_path):
    with pytest.raises(errors.ExtractorError) as e:
        ScreenTextSource.from_config({"tesseract_cmd": str(tmp_path / "no-tesseract")})
    message = str(e.value)
    assert "no-tesseract" in message and "apt-get install tesseract-ocr tesseract-ocr-eng" in message


def test_config_errors_name_the_key():
    with pytest.raises(errors.ConfigError, match="unknown config keys \\['lang'\\]"):
        ScreenTextSource.from_config({"lang": "eng"})
    with pytest.raises(errors.ConfigError, match="min_confidence"):
        ScreenTextSource.from_config({"min_confidence": 150})
    with pytest.raises(errors.ExtractorError, match="tesseract-ocr-xyz"):
        ScreenTextSource.from_config({"languages": ["eng", "xyz"]})


def test_registered_and_fingerprint_follows_what_changes_output(eng):
    assert SOURCES["screen"] is ScreenTextSource
    same = ScreenTextSource.from_config({"languages": "eng", "timeout_s": 5, "batch_frames": 2})
    assert same.fingerprint == eng.fingerprint
    for changed in ({"min_confidence": 50}, {"psm": 3}, {"max_width": 640}):
        other = ScreenTextSource.from_config({"languages": ["eng"], **changed})
        assert other.fingerprint != eng.fingerprint, changed
    default = ScreenTextSource.from_config({})
    assert default.languages[0] == "eng"
    assert ("chi_sim" in default.languages) == ("chi_sim" in _installed_languages())
    if len(default.languages) > 1:
        assert default.fingerprint != eng.fingerprint


def _installed_languages() -> list[str]:
    out = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout
    return [ln.strip() for ln in out.splitlines()[1:]]


def test_chinese_text_is_read_with_chi_sim(tmp_path, run_ffmpeg):
    # make test installs both
    assert "chi_sim" in _installed_languages(), "apt-get install tesseract-ocr-chi-sim"
    fonts = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True).stdout.split()
    assert fonts, "no Chinese font for drawtext: apt-get install fonts-wqy-microhei"
    clip = tmp_path / "zh.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "color=c=white:s=640x360:d=4:r=5", "-vf",
               f"drawtext=fontfile={fonts[0].rstrip(':')}:text='季度收入报告':fontsize=48:fontcolor=black:"
               "x=(w-tw)/2:y=(h-th)/2", *H264, str(clip))
    transcript = ScreenTextSource.from_config({}).read(_item(clip))
    assert [c.text for c in transcript.cues] == ["季度收入报告"], transcript.cues
    assert transcript.language == "eng+chi_sim"
