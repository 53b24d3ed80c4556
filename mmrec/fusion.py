"""Late fusion: one fused vector per item, query-side modality weights.

An item's fused vector is the concatenation of its unit per-modality vectors (a
missing modality is a zero block). A query is the concatenation of `w_m * q_m` with
unit `q_m`, so `query · item = sum_m w_m * cos(q_m, v_m)`: weights change per query
without re-ingesting, and one vector index serves every weighting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmrec.errors import ConfigError

MODALITIES = ("visual", "audio", "text", "multilingual")
# Blocks embedded from words: a catalog may hold an English and a multilingual one.
TEXT_MODALITIES = ("text", "multilingual")


@dataclass(frozen=True)
class Block:
    """One modality's slice [offset, offset + dim) of the fused vector."""

    modality: str
    extractor: str
    dim: int
    offset: int


@dataclass(frozen=True)
class FusionLayout:
    """Where each modality lives in the fused vector; stored with the catalog."""

    blocks: tuple[Block, ...]

    @classmethod
    def from_extractors(cls, extractors: Iterable[Any]) -> FusionLayout:
        """Layout of a set of extractors (anything with .modality, .preset and .dim)."""
        return cls.from_dims([(e.modality, e.preset, e.dim) for e in extractors])

    @classmethod
    def from_dims(cls, dims: list[tuple[str, str, int]]) -> FusionLayout:
        """Layout from (modality, extractor preset, dim) in a fixed modality order."""
        order = {m: i for i, m in enumerate(MODALITIES)}
        seen: set[str] = set()
        blocks, offset = [], 0
        for modality, extractor, dim in sorted(dims, key=lambda d: order.get(d[0], 99)):
            if modality in seen:
                raise ConfigError(f"two extractors for modality {modality!r}: use one per modality")
            seen.add(modality)
            blocks.append(Block(modality, extractor, int(dim), offset))
            offset += int(dim)
        return cls(tuple(blocks))

    @property
    def dim(self) -> int:
        return sum(b.dim for b in self.blocks)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(b.modality for b in self.blocks)

    def block(self, modality: str) -> Block:
        for b in self.blocks:
            if b.modality == modality:
                return b
        raise ConfigError(
            f"modality {modality!r} is not in this catalog (it has: {', '.join(self.modalities)})"
        )

    def to_json(self) -> str:
        return json.dumps([asdict(b) for b in self.blocks])

    @classmethod
    def from_json(cls, text: str) -> FusionLayout:
        return cls(tuple(Block(**b) for b in json.loads(text)))

    def fuse(self, vectors: dict[str, np.ndarray | None]) -> np.ndarray:
        """Concatenate unit per-modality vectors; missing modalities become zero blocks."""
        out = np.zeros(self.dim, dtype=np.float32)
        for b in self.blocks:
            v = vectors.get(b.modality)
            if v is None:
                continue
            v = np.asarray(v, dtype=np.float32).reshape(-1)
            if v.shape[0] != b.dim:
                raise ConfigError(f"{b.modality} vector has dim {v.shape[0]}, layout expects {b.dim}")
            n = float(np.linalg.norm(v))
            if n > 0:
                out[b.offset : b.offset + b.dim] = v / n
        return out

    def split(self, fused: np.ndarray) -> dict[str, np.ndarray]:
        """Per-modality views of fused vectors ([..., dim] -> {modality: [..., block dim]})."""
        return {b.modality: fused[..., b.offset : b.offset + b.dim] for b in self.blocks}

    def query(self, vectors: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
        """Weighted query vector: concat of w_m * unit(q_m) for modalities with a query."""
        out = np.zeros(self.dim, dtype=np.float32)
        for b in self.blocks:
            q = vectors.get(b.modality)
            w = float(weights.get(b.modality, 0.0))
            if q is None or w == 0.0:
                continue
            q = np.asarray(q, dtype=np.float32).reshape(-1)
            n = float(np.linalg.norm(q))
            if n > 0:
                out[b.offset : b.offset + b.dim] = w * q / n
        return out

    def scale(self, vectors: np.ndarray, weights: dict[str, float]) -> np.ndarray:
        """Fused vectors ([..., dim]) with each modality's block times its weight (absent: 0)."""
        out = np.array(vectors, dtype=np.float32, copy=True)
        for b in self.blocks:
            out[..., b.offset : b.offset + b.dim] *= float(weights.get(b.modality, 0.0))
        return out

    def modality_scores(self, query: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """Per-modality contributions w_m * cos(q_m, v_m) of a weighted query to each item."""
        items = np.atleast_2d(items)
        return {
            b.modality: items[:, b.offset : b.offset + b.dim] @ query[b.offset : b.offset + b.dim]
            for b in self.blocks
        }


def parse_weights(text: str | None, modalities: tuple[str, ...]) -> dict[str, float]:
    """Parse "visual=1,audio=0.5" into weights; unnamed modalities get 0 when any is named.

    None or "" gives weight 1 to every modality.
    """
    if not text:
        return {m: 1.0 for m in modalities}
    weights = {m: 0.0 for m in modalities}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in modalities:
            raise ConfigError(
                f"bad weight {part.strip()!r}: use modality=number with modality one of "
                f"{', '.join(modalities)} (e.g. visual=1,audio=0.5)"
            )
        try:
            weights[name] = float(value)
        except ValueError as e:
            raise ConfigError(f"bad weight {part.strip()!r}: {value!r} is not a number") from e
    if not any(weights.values()):
        raise ConfigError("all modality weights are zero: give at least one a positive weight")
    return weights
