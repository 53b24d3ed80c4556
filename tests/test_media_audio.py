"""Audio decoding: mono float32 at the requested rate, windows with start times."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec import errors
from mmrec.media import decode_audio, iter_audio_windows


def test_wav_resampled_to_mono_48k_windows(media):
    windows = list(iter_audio_windows(media["wav"], sample_rate=48000, window_s=5.0))
    assert [(w.start, w.end) for w in windows] == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    assert [len(w.samples) for w in windows] == [240000, 240000, 96000]
    assert all(w.samples.dtype == np.float32 and w.samples.ndim == 1 for w in windows)


def test_sine_frequency_survives_decoding(media):
    audio = decode_audio(media["wav"], sample_rate=16000)
    spectrum = np.abs(np.fft.rfft(audio.samples))
    peak_hz = np.argmax(spectrum) * 16000 / len(audio.samples)
    assert peak_hz == pytest.approx(330, abs=2)
    assert 0.05 < np.abs(audio.samples).max() <= 1.0


@pytest.mark.parametrize(("name", "seconds"), [("mp3", 5.0), ("flac", 3.0), ("mp4", 6.0),
                                               ("webm", 3.0)])
def test_sample_counts_match_duration(media, name, seconds):
    audio = decode_audio(media[name], sample_rate=48000)
    assert audio.sample_rate == 48000
    assert len(audio.samples) == pytest.approx(seconds * 48000, rel=0.02)


def test_default_window_is_ten_seconds(media):
    windows = list(iter_audio_windows(media["wav"]))
    assert [w.start for w in windows] == [0.0, 10.0]
    assert len(windows[0].samples) == 480000


def test_max_seconds_limits_decoding(media):
    audio = decode_audio(media["wav"], sample_rate=8000, max_seconds=2.0)
    assert len(audio.samples) == 16000


def test_video_only_file_has_no_audio(media):
    with pytest.raises(errors.NoMediaStreamError, match="no audio stream"):
        decode_audio(media["video_only"])


@pytest.mark.parametrize("name", ["empty", "random", "text_as_media", "truncated"])
def test_broken_files(media, name):
    with pytest.raises(errors.MediaError) as exc:
        decode_audio(media[name])
    assert str(exc.value).startswith(str(media[name]))


def test_truncated_audio_is_detected(media):
    with pytest.raises(errors.TruncatedMediaError):
        decode_audio(media["truncated_faststart"], sample_rate=8000)


def test_bad_window_arguments():
    with pytest.raises(errors.ConfigError):
        next(iter_audio_windows("x.wav", window_s=0))
