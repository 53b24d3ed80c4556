"""The extractor contract: media in, unit-norm float32 vectors out (nothing about storage).

An extractor is built from a typed config (usually loaded from a preset file), owns a
model, and embeds in two steps so decoding can overlap model work:

    prepared = extractor.prepare(item)          # CPU/ffmpeg, safe to run on worker threads
    vectors  = extractor.embed_prepared(batch)  # model work, batched across files

`embed_media(items)` chains the two for callers that do not need the overlap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from mmrec.media import MediaInfo, TextMeta

if TYPE_CHECKING:
    from .presets import PresetInfo
    from .runtime import RuntimeOptions
    from .weights import ResolvedWeights

Modality = Literal["visual", "audio", "text", "multilingual"]
MODALITIES: tuple[Modality, ...] = ("visual", "audio", "text", "multilingual")


@dataclass(frozen=True)
class MediaItem:
    """One file as an extractor sees it: its path, probe result and describing text.

    transcripts: what the set's text sources read from it (source name -> Transcript),
    filled by the first text extractor that needs them, so each source runs once per file.
    """

    path: str
    info: MediaInfo
    text: TextMeta | None = None
    transcripts: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class SegmentVectors:
    """One file's vectors from one extractor.

    Attributes:
        starts, ends: float64 [n] segment bounds in seconds (text segments: the span
            of the subtitle cues they cover, or 0..duration for whole-file text).
        vectors: float32 [n, dim], each row unit-norm.
        item_vector: float32 [dim], unit-norm pool of the segments.
        labels: optional per-segment labels (e.g. "title", "subtitles", "speech") for text.
        texts: the text each segment embeds (text extractors; empty for media).
    """

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    item_vector: np.ndarray
    labels: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.starts)


class Extractor(ABC):
    """Base class of every extractor. Subclasses register with @register_extractor.

    Class attributes:
        name: registered name ("clip", "clap", "text", ...).
        modality: "visual", "audio", "text" or "multilingual" (a second text block).
        has_text_tower: True when embed_text maps text into the media space.
        unit: what work_units() counts ("frames", "windows", "texts"); progress shows it.
    Instance attributes (known from the config, without running the model):
        dim, fingerprint, weights_source, is_random, preset.
    """

    name: ClassVar[str]
    modality: ClassVar[Modality]
    has_text_tower: ClassVar[bool] = False
    unit: ClassVar[str] = "items"

    dim: int
    preset: str
    fingerprint: str
    weights_source: str
    is_random: bool
    text_sources: tuple[Any, ...] = ()  # TextSources whose cues a text extractor embeds too

    @property
    def ingest_fingerprint(self) -> str:
        """What an ingested item's vectors depend on: the model's fingerprint and, for a text
        extractor with sources, theirs (a new ASR model re-transcribes). A query only needs
        `fingerprint`: sources change what was embedded, not how a query is."""
        if not self.text_sources:
            return self.fingerprint
        from .fingerprint import combined

        return combined(self.fingerprint, {s.name: s.fingerprint for s in self.text_sources})

    @classmethod
    def from_preset(
        cls, preset: PresetInfo, weights: ResolvedWeights, runtime: RuntimeOptions
    ) -> Extractor:
        """Build the extractor for a preset with resolved weights (loads the model)."""
        return cls(preset, weights, runtime)  # type: ignore[call-arg]

    def applies_to(self, item: MediaItem) -> bool:
        """Whether this extractor has anything to embed for the item (e.g. a video stream)."""
        return True

    @abstractmethod
    def prepare(self, item: MediaItem) -> Any:
        """Decode/tokenize one item on the CPU; runs on prefetch threads."""

    def work_units(self, prepared: Any) -> int:
        """How many model inputs (frames, windows, texts) a prepared item holds."""
        return 1

    @abstractmethod
    def embed_prepared(self, batch: Sequence[Any]) -> list[SegmentVectors]:
        """Embed prepared items, batching their frames/windows/chunks across files."""

    def embed_media(self, items: Sequence[MediaItem]) -> list[SegmentVectors]:
        """Embed items in one call (no decode/model overlap)."""
        return self.embed_prepared([self.prepare(i) for i in items])

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """float32 [len(texts), dim] unit-norm vectors in this extractor's space."""
        raise NotImplementedError(f"extractor {self.name!r} has no text tower")

    def describe(self) -> dict[str, Any]:
        """What the catalog stores about this extractor and the CLI lists."""
        return {
            "name": self.name,
            "preset": self.preset,
            "modality": self.modality,
            "dim": self.dim,
            "fingerprint": self.fingerprint,
            "weights": self.weights_source,
            "config": dict(getattr(self, "preset_config", {})),
            "random_weights": self.is_random,
            "text_tower": self.has_text_tower,
            "sources": {s.name: s.fingerprint for s in self.text_sources},
        }


def l2_normalize(x: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return (x / np.maximum(norm, eps)).astype(np.float32)


def pool_unit(vectors: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of unit vectors, renormalised: the item vector of a set of segment vectors."""
    v = l2_normalize(vectors)
    mean = v.mean(axis=0) if weights is None else (v * weights[:, None]).sum(0) / weights.sum()
    return l2_normalize(mean)


def embed_texts(extractors: Sequence[Extractor], texts: list[str]) -> dict[str, np.ndarray]:
    """texts -> {modality: float32 [len(texts), dim]} through every text tower of a set: what
    a text query or interests text becomes (extractors without a text tower are left out)."""
    return {e.modality: e.embed_text(texts) for e in extractors if e.has_text_tower}
