"""Fuzzing the media layer (issue 7) with hypothesis.

Random bytes, random bytes behind a real container signature, and mutations of small
valid files (bit flips, truncation, chunk duplication/removal/overwrite) go through
probe(), read_text_meta() and both decoders. For every input each call either succeeds
with well-formed output or raises a MediaError subclass with a one-line printable
message naming the file; never another exception type, and never past its time limit.

Deterministic for CI: derandomize=True, no example database, deadline off (the per-call
time limits are asserted instead). Hypothesis' pytest plugin still caches source
constants under ./.hypothesis at collection time; that directory is git-ignored.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmrec import errors
from mmrec.errors import printable
from mmrec.media import FramePolicy, decode_audio, decode_video, probe, read_text_meta

TIMEOUT_S = 5.0  # per ffprobe/ffmpeg call; generous for files of a few kB
SLACK_S = 3.0  # process start, watchdog reaction, thread joins on a loaded CI box
POLICY = FramePolicy(size=(16, 16), fps=4.0, max_frames=8, chunk_frames=4)
SUFFIXES = (".mp4", ".mkv", ".mp3", ".wav", ".flac", ".webm", ".m4a", ".ogg", ".avi", ".ts")
SIGNATURES = {  # container magic numbers, so random bodies reach past format detection
    ".mp4": b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2",
    ".mkv": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x88matroska",
    ".mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64",
    ".wav": b"RIFF\x24\x80\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
            b"\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x80\x00\x00",
    ".flac": b"fLaC\x00\x00\x00\x22",
    ".ogg": b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00",
}

SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_names = itertools.count()


@pytest.fixture(scope="session")
def seeds(tmp_path_factory, run_ffmpeg) -> dict[str, bytes]:
    """Small valid files (a few kB each) to mutate: suffix -> bytes."""
    d = tmp_path_factory.mktemp("fuzz_seeds")
    v = ("-f", "lavfi", "-i", "testsrc2=size=32x24:rate=8:duration=0.5")
    a = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000:duration=0.5")
    srt = d / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:00,400\nfuzz me\n", encoding="utf-8")
    h264 = ("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p")
    specs = {
        ".mp4": (*v, *a, *h264, "-c:a", "aac", "-b:a", "16k", "-movflags", "+faststart"),
        ".mkv": (*v, *a, "-i", str(srt), "-map", "0", "-map", "1", "-map", "2", *h264,
                 "-c:a", "libvorbis", "-c:s", "srt"),
        ".mp3": (*a, "-c:a", "libmp3lame", "-b:a", "16k"),
        ".wav": (*a, "-c:a", "pcm_s16le"),
        ".flac": (*a, "-c:a", "flac"),
    }
    out = {}
    for suffix, args in specs.items():
        path = d / f"seed{suffix}"
        run_ffmpeg(*args, str(path))
        out[suffix] = path.read_bytes()
        assert len(out[suffix]) < 16_000, (suffix, len(out[suffix]))
    return out


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_work")


def _timed(fn, *args, **kwargs):
    """Run fn; return (result, error). A non-MediaError propagates and fails the example."""
    start = time.monotonic()
    try:
        return fn(*args, **kwargs), None
    except errors.MediaError as e:
        return None, e
    finally:
        elapsed = time.monotonic() - start
        assert elapsed < TIMEOUT_S + SLACK_S, f"{fn.__name__} ran {elapsed:.1f}s"


def _check_error(e: errors.MediaError, path: Path) -> None:
    message = str(e)
    message.encode("utf-8")
    assert "\n" not in message and message.startswith(printable(str(path)) + ": ")
    assert e.reason and e.stage in ("probe", "decode")


def check_media_layer(path: Path) -> str:
    """Everything the media layer does with one file; returns a short outcome label."""
    info, err = _timed(probe, path, timeout=TIMEOUT_S)
    if err is not None:
        _check_error(err, path)
        return type(err).__name__
    assert info.has_video or info.has_audio
    meta, _ = _timed(read_text_meta, path, info, timeout=TIMEOUT_S)
    assert isinstance(meta.title, str) and meta.title
    outcome = []
    if info.has_video:
        video, err = _timed(decode_video, path, POLICY, info, timeout=TIMEOUT_S)
        if err is not None:
            _check_error(err, path)
            outcome.append(type(err).__name__)
        else:
            n = len(video.times)
            assert 1 <= n <= POLICY.max_frames
            assert video.frames.shape == (n, 16, 16, 3) and video.frames.dtype == np.uint8
            assert np.all(np.isfinite(video.times))
            outcome.append("video")
    if info.has_audio:
        audio, err = _timed(decode_audio, path, 8000, info, max_seconds=20.0,
                            timeout=TIMEOUT_S)
        if err is not None:
            _check_error(err, path)
            outcome.append(type(err).__name__)
        else:
            s = audio.samples
            assert s.dtype == np.float32 and s.ndim == 1 and 0 < len(s) <= 20 * 8000
            assert np.all(np.isfinite(s)) and np.abs(s).max() <= 1.0
            outcome.append("audio")
    return "+".join(outcome)


def _write(work_dir: Path, suffix: str, data: bytes) -> Path:
    path = work_dir / f"case{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


@settings(SETTINGS, max_examples=30)
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(work_dir, data, suffix):
    path = _write(work_dir, suffix, data)
    try:
        check_media_layer(path)
    finally:
        path.unlink()


@settings(SETTINGS, max_examples=30)
@given(suffix=st.sampled_from(sorted(SIGNATURES)), body=st.binary(min_size=1, max_size=4096))
def test_random_bytes_behind_a_container_signature(work_dir, suffix, body):
    path = _write(work_dir, suffix, SIGNATURES[suffix] + body)
    try:
        check_media_layer(path)
    finally:
        path.unlink()


# A mutation is (kind, where, extent, value); positions are fractions of the current
# length so one strategy fits seeds of any size.
MUTATION = st.tuples(
    st.sampled_from(["flip", "truncate", "duplicate", "remove", "overwrite"]),
    st.floats(0.0, 1.0, exclude_max=True),
    st.integers(1, 512),
    st.integers(0, 255),
)


def mutate(data: bytes, mutations: list[tuple[str, float, int, int]]) -> bytes:
    buf = bytearray(data)
    for kind, where, extent, value in mutations:
        if not buf:
            break
        i = int(where * len(buf))
        if kind == "flip":
            buf[i] ^= 1 << (value % 8)
        elif kind == "truncate":
            del buf[i:]
        elif kind == "duplicate":
            buf[i:i] = buf[i : i + extent]
        elif kind == "remove":
            del buf[i : i + extent]
        else:
            buf[i : i + min(extent, 16)] = bytes([value]) * min(extent, 16)
    return bytes(buf)


@settings(SETTINGS, max_examples=70)
@given(suffix=st.sampled_from([".mp4", ".mkv", ".mp3", ".wav", ".flac"]),
       mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutated_media(seeds, work_dir, suffix, mutations):
    path = _write(work_dir, suffix, mutate(seeds[suffix], mutations))
    try:
        check_media_layer(path)
    finally:
        path.unlink()


def test_seeds_themselves_decode(seeds, work_dir):
    """The mutation baseline: every seed decodes fully, so mutations start from valid media."""
    expected = {".mp4": "video+audio", ".mkv": "video+audio", ".mp3": "audio", ".wav": "audio",
                ".flac": "audio"}
    for suffix, data in seeds.items():
        path = _write(work_dir, suffix, data)
        assert check_media_layer(path) == expected[suffix]
        if suffix == ".mkv":  # the embedded subtitle path is exercised by the mutations
            assert read_text_meta(path, probe(path)).subtitle_text == "fuzz me"
