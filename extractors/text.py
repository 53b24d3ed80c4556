"""Text extractor (transformers AutoModel, BERT family): describing text -> vectors.

Segments: the title, the description with tags and music tags, and subtitle chunks
with their cue times (so a text search can point to a moment). Texts longer than the
model's window are cut into overlapping token windows, mean-pooled, then pooled.
Any BERT-family checkpoint directory works (e.g. a multilingual MiniLM).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrec.errors import ExtractorError
from mmrec.media import Cue, TextMeta, read_text_meta

from .base import Extractor, MediaItem, SegmentVectors, pool_unit
from .fingerprint import fingerprint, weights_digest
from .presets import PresetInfo, parse_config
from .registry import register_extractor
from .runtime import RuntimeOptions, bind_common, inference
from .timed_text import Transcript, read_sources
from .weights import ResolvedWeights

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1


@dataclass(frozen=True)
class TextConfig:
    """The "config" of a text preset.

    max_tokens: token window per model call (special tokens included); stride: tokens
    shared by consecutive windows of a long text; subtitle_chunk_words / _s: how many
    words / seconds of subtitle cues go into one segment.
    """

    architecture: str
    max_tokens: int = 256
    stride: int = 32
    batch_size: int = 32
    subtitle_chunk_words: int = 80
    subtitle_chunk_s: float = 30.0


@dataclass
class TextPrepared:
    """The text segments of one file: labels, texts and time bounds."""

    item: MediaItem
    labels: tuple[str, ...]
    texts: list[str]
    starts: np.ndarray
    ends: np.ndarray


def chunk_cues(cues: Sequence[Cue], max_words: int, max_s: float) -> list[tuple[float, float, str]]:
    """Group consecutive subtitle cues into (start, end, text) chunks of bounded size."""
    chunks: list[tuple[float, float, str]] = []
    group: list[Cue] = []
    words = 0
    for cue in cues:
        n = len(cue.text.split())
        if group and (words + n > max_words or cue.end - group[0].start > max_s):
            chunks.append((group[0].start, group[-1].end, " ".join(c.text for c in group)))
            group, words = [], 0
        group.append(cue)
        words += n
    if group:
        chunks.append((group[0].start, group[-1].end, " ".join(c.text for c in group)))
    return chunks


def text_segments(item: MediaItem, meta: TextMeta, cfg: TextConfig,
                  transcripts: Sequence[Transcript] = ()) -> TextPrepared:
    """Title, description (+tags, music tags), subtitle-chunk segments of one file, and the
    chunks of what its text sources read (speech, on-screen text), with their times."""
    duration = float(item.info.duration or 0.0)
    segments: list[tuple[str, str, float, float]] = []
    if meta.title:
        segments.append(("title", meta.title, 0.0, duration))
    desc = ". ".join(
        v if k == "description" else f"{k}: {v}"
        for k, v in meta.fields().items() if k not in ("title", "subtitles")
    )
    if desc:
        segments.append(("description", desc, 0.0, duration))
    for start, end, t in chunk_cues(meta.subtitles, cfg.subtitle_chunk_words, cfg.subtitle_chunk_s):
        segments.append(("subtitles", t, start, end))
    for tr in transcripts:
        for start, end, t in chunk_cues(tr.cues, cfg.subtitle_chunk_words, cfg.subtitle_chunk_s):
            segments.append((tr.source, t, start, end))
    return TextPrepared(
        item,
        tuple(s[0] for s in segments),
        [s[1] for s in segments],
        np.array([s[2] for s in segments], np.float64),
        np.array([s[3] for s in segments], np.float64),
    )


def per_item(batch: Sequence[TextPrepared], vectors: np.ndarray) -> list[SegmentVectors]:
    """The vectors of a batch's texts (in batch order) split back into each item's segments."""
    results, offset = [], 0
    for p in batch:
        own = vectors[offset : offset + len(p.texts)]
        offset += len(p.texts)
        results.append(SegmentVectors(p.starts, p.ends, own, pool_unit(own), p.labels, tuple(p.texts)))
    return results


@register_extractor
class TextExtractor(Extractor):
    """Mean-pooled BERT-family sentence embeddings of a file's describing text."""

    name = "text"
    modality = "text"
    unit = "texts"
    has_text_tower = True

    def __init__(self, preset: PresetInfo, weights: ResolvedWeights, runtime: RuntimeOptions):
        from transformers import AutoModel, AutoTokenizer

        self.config = cfg = parse_config(TextConfig, preset.config, preset.source or preset.name)
        if weights.path is None:
            raise ExtractorError(
                f"preset {preset.name!r}: the text extractor needs real weights "
                f"(a BERT-family checkpoint directory), not random"
            )
        model_dir = weights.path if weights.path.is_dir() else weights.path.parent
        bind_common(self, preset, weights, runtime, cfg.batch_size)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModel.from_pretrained(model_dir, local_files_only=True)
        self.model = self.model.to(self.device).eval()
        limit = int(getattr(self.model.config, "max_position_embeddings", cfg.max_tokens))
        self.max_tokens = min(cfg.max_tokens, limit)
        if not 0 <= cfg.stride < self.max_tokens // 2:
            raise ExtractorError(f"preset {preset.name!r}: stride must be in [0, max_tokens/2)")
        self.dim = int(self.model.config.hidden_size)
        if self.dim != preset.dim:
            raise ExtractorError(f"preset {preset.name!r} says dim {preset.dim}, model has {self.dim}")
        arch = {"architecture": cfg.architecture, "model_type": self.model.config.model_type}
        prep = {"version": PREPROCESS_VERSION, "max_tokens": self.max_tokens,
                "stride": cfg.stride, "chunk_words": cfg.subtitle_chunk_words,
                "chunk_s": cfg.subtitle_chunk_s}
        self.fingerprint = fingerprint(self.name, arch, weights_digest(weights), prep)

    def work_units(self, prepared: Any) -> int:
        return len(prepared.texts)

    def prepare(self, item: MediaItem) -> TextPrepared:
        meta = item.text or read_text_meta(item.path, item.info)
        return text_segments(item, meta, self.config, read_sources(item, self.text_sources))

    def chunk_tokens(self, texts: Sequence[str]) -> tuple[list[list[int]], list[int]]:
        """Overlapping token windows of each text (special tokens included) and their owners."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_tokens, stride=self.config.stride,
            return_overflowing_tokens=True, padding=False,
        )
        return list(enc["input_ids"]), list(enc["overflow_to_sample_mapping"])

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim] unit vectors: token windows mean-pooled, then pooled."""
        import torch.nn.functional as F

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids, owner = self.chunk_tokens(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")  # little padding per batch
        chunk_vecs = np.zeros((len(ids), self.dim), np.float32)
        for i in range(0, len(order), self.batch_size):
            rows = order[i : i + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[r] for r in rows]}, return_tensors="pt")
            mask = batch["attention_mask"].to(self.device)
            with inference(self.device, self.precision):
                hidden = self.model(input_ids=batch["input_ids"].to(self.device),
                                    attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            chunk_vecs[rows] = F.normalize(pooled.float(), dim=-1).cpu().numpy()
        owner_arr = np.asarray(owner)
        lengths = np.array([len(x) for x in ids], np.float32)
        out = np.stack([
            pool_unit(chunk_vecs[owner_arr == t], lengths[owner_arr == t]) for t in range(len(texts))
        ])
        return out

    def embed_prepared(self, batch: Sequence[TextPrepared]) -> list[SegmentVectors]:
        return per_item(batch, self.encode([t for p in batch for t in p.texts]))

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)
