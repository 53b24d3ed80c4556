"""Sampled video decoding: sizes, frame counts per policy, timestamps, windows, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec import errors
from mmrec.media import FramePolicy, decode_video, group_windows, iter_frames


def test_fps_sampling_counts_times_and_size(media):
    out = decode_video(media["mp4"], FramePolicy(size=(64, 48), fps=1.0, max_frames=None))
    assert out.frames.dtype == np.uint8
    assert out.frames.shape == (6, 48, 64, 3)
    np.testing.assert_allclose(out.times, np.arange(6.0), atol=0.05)


def test_fps_cap_two_per_second(media):
    out = decode_video(media["mkv"], FramePolicy(size=(32, 32), fps=2.0, max_frames=None))
    assert len(out.times) == 8
    np.testing.assert_allclose(np.diff(out.times), 0.5, atol=0.05)


def test_max_frames_spreads_over_whole_file(media):
    policy = FramePolicy(size=(32, 32), fps=5.0, max_frames=4)
    out = decode_video(media["mp4"], policy)
    assert len(out.times) == 4
    assert policy.effective_fps(6.0) == pytest.approx(4 / 6)
    assert out.times[-1] >= 4.0  # frames reach the end of the file, not just its start
    assert np.all(np.diff(out.times) > 1.0)


def test_windows_group_frames_by_time(media):
    out = decode_video(media["mp4"], FramePolicy(size=(32, 32), fps=1.0, window_s=2.5))
    assert [(w.start, w.end) for w in out.windows] == [(0.0, 2.5), (2.5, 5.0), (5.0, 6.0)]
    assert [list(w.rows) for w in out.windows] == [[0, 1, 2], [3, 4], [5]]
    for w in out.windows:
        assert np.all((out.times[w.rows] >= w.start) & (out.times[w.rows] < w.end))


def test_group_windows_drops_empty_windows():
    windows = group_windows(np.array([0.0, 0.5, 7.2]), window_s=2.0, duration=8.0)
    assert [(w.index, w.start, w.end) for w in windows] == [(0, 0.0, 2.0), (3, 6.0, 8.0)]
    assert group_windows(np.array([]), 2.0, 8.0) == []


def test_scene_change_sampling_finds_the_cuts(media):
    out = decode_video(media["scenes"], FramePolicy(size=(16, 16), fps=5, scene_threshold=0.3))
    np.testing.assert_allclose(out.times, [0.0, 2.0, 4.0], atol=0.11)
    means = out.frames.reshape(3, -1, 3).mean(axis=1)
    assert np.argmax(means[0]) == 0 and np.argmax(means[1]) == 2 and np.argmax(means[2]) == 1


def test_resize_modes(media):
    fit = decode_video(media["portrait"], FramePolicy(size=(64, 64), resize="fit", max_frames=1))
    frame = fit.frames[0].astype(int)
    assert frame[:, :10].max() < 20 and frame[:, -10:].max() < 20  # letterbox bars left/right
    assert frame[:, 28:36].mean() > 40
    cover = decode_video(media["portrait"], FramePolicy(size=(64, 64), resize="cover", max_frames=1))
    assert cover.frames.shape == (1, 64, 64, 3)
    assert cover.frames[0][:, :10].max() > 20  # no bars: the picture fills the frame


def test_rotation_is_applied_before_sampling(media):
    src = decode_video(media["rotated"].with_name("landscape_src.mp4"),
                       FramePolicy(size=(320, 180), resize="stretch", max_frames=1)).frames[0]
    rot = decode_video(media["rotated"], FramePolicy(size=(180, 320), resize="stretch",
                                                      max_frames=1)).frames[0]
    errs = {k: np.abs(np.rot90(src, k=k).astype(int) - rot.astype(int)).mean() for k in (1, -1)}
    assert min(errs.values()) < 2.0 < max(errs.values())


def test_frames_stream_in_bounded_chunks(media):
    chunks = list(iter_frames(media["mp4"], FramePolicy(size=(32, 32), fps=5, max_frames=None,
                                                         chunk_frames=7)))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2]
    assert all(c.frames.shape[1:] == (32, 32, 3) for c in chunks)
    times = np.concatenate([c.times for c in chunks])
    assert np.all(np.diff(times) > 0)


@pytest.mark.parametrize("name", ["wav", "mp3"])
def test_audio_only_file_has_no_video(media, name):
    with pytest.raises(errors.NoMediaStreamError, match="no video stream"):
        decode_video(media[name])


def test_truncated_after_index_is_detected(media):
    with pytest.raises(errors.TruncatedMediaError, match="truncated"):
        decode_video(media["truncated_faststart"], FramePolicy(size=(32, 32)))


@pytest.mark.parametrize("name", ["empty", "random", "text_as_media", "truncated", "no_stream"])
def test_broken_files_raise_media_errors(media, name):
    with pytest.raises(errors.MediaError) as exc:
        decode_video(media[name], FramePolicy(size=(32, 32)))
    assert str(media[name]) in str(exc.value)


def test_decode_timeout_kills_ffmpeg(media):
    with pytest.raises(errors.FfmpegTimeoutError):
        list(iter_frames(media["mp4"], FramePolicy(size=(320, 240), fps=25, max_frames=None),
                         timeout=0.01))


@pytest.mark.parametrize(
    "kwargs",
    [{"size": (0, 10)}, {"resize": "zoom"}, {"fps": 0}, {"max_frames": 0}, {"window_s": -1},
     {"scene_threshold": 1.5}, {"chunk_frames": 0}],
)
def test_policy_validation_names_the_field(kwargs):
    with pytest.raises(errors.ConfigError, match=next(iter(kwargs))):
        FramePolicy(**kwargs)
