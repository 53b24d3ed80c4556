"""CLIP visual extractor (open_clip): sampled frames -> window vectors; text -> same space.

Frames are decoded and scaled to the model's input size by ffmpeg ("cover": fill, then
centre-crop, as CLIP's own transform does); near-black and near-uniform frames are
dropped when the file has others. Normalisation with the model's mean/std runs in torch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ExtractorError
from mmrec.media import FramePolicy, Window, decode_video, group_windows

from .base import Extractor, MediaItem, SegmentVectors, l2_normalize, pool_unit
from .clip_text import encode_text
from .fingerprint import fingerprint, weights_digest
from .presets import PresetInfo, parse_config
from .registry import register_extractor
from .runtime import RuntimeOptions, bind_common, inference, seeded
from .weights import ResolvedWeights

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1
_CHECKPOINT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


@dataclass(frozen=True)
class ClipConfig:
    """The "config" of a clip preset.

    architecture: an open_clip model name (e.g. "ViT-B-32"), or a label when model_cfg
        gives the architecture inline; pretrained: the open_clip tag (for mean/std).
    black_mean / uniform_std: frames with mean (0..255) or std below these are skipped.
    """

    architecture: str
    pretrained: str | None = None
    model_cfg: Mapping[str, Any] | None = None
    batch_size: int = 64
    fps: float = 1.0
    max_frames: int = 64
    window_s: float = 5.0
    black_mean: float = 12.0
    uniform_std: float = 4.0


@dataclass
class ClipPrepared:
    """Decoded, filtered frames of one file, grouped into time windows."""

    item: MediaItem
    frames: np.ndarray  # uint8 [n, s, s, 3]
    times: np.ndarray
    windows: list[Window] = field(default_factory=list)


def informative_frames(frames: np.ndarray, black_mean: float, uniform_std: float) -> np.ndarray:
    """Boolean mask of frames that are neither near-black nor near-uniform (all True if none)."""
    gray = frames.astype(np.float32).mean(axis=-1).reshape(len(frames), -1)
    ok = (gray.mean(axis=1) >= black_mean) & (gray.std(axis=1) >= uniform_std)
    return ok if ok.any() else np.ones(len(frames), dtype=bool)


def _checkpoint_file(path: Path) -> Path:
    if path.is_file():
        return path
    for name in _CHECKPOINT_NAMES:
        if (path / name).is_file():
            return path / name
    found = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")) + sorted(path.glob("*.pt"))
    if not found:
        raise ExtractorError(f"no open_clip checkpoint (*.safetensors, *.bin, *.pt) in {path}")
    return found[0]


@register_extractor
class ClipExtractor(Extractor):
    """open_clip image tower on sampled frames, text tower for queries."""

    name = "clip"
    modality = "visual"
    unit = "frames"
    has_text_tower = True

    def __init__(self, preset: PresetInfo, weights: ResolvedWeights, runtime: RuntimeOptions):
        import open_clip
        import torch

        self.config = cfg = parse_config(ClipConfig, preset.config, preset.source or preset.name)
        bind_common(self, preset, weights, runtime, cfg.batch_size)
        with seeded(weights.seed or 0):
            if cfg.model_cfg is not None:
                model_cfg = dict(cfg.model_cfg)
                model = open_clip.CLIP(**model_cfg)
                tokenizer = open_clip.SimpleTokenizer(
                    context_length=model_cfg.get("text_cfg", {}).get("context_length", 77)
                )
            else:
                model_cfg = open_clip.get_model_config(cfg.architecture)
                if model_cfg is None:
                    raise ExtractorError(
                        f"preset {preset.name!r}: open_clip has no architecture "
                        f"{cfg.architecture!r}; see open_clip.list_models()"
                    )
                model = open_clip.create_model(cfg.architecture, pretrained=None)
                tokenizer = open_clip.get_tokenizer(cfg.architecture)
        if weights.path is not None:
            open_clip.load_checkpoint(model, str(_checkpoint_file(weights.path)))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        size = self.model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        pre = open_clip.get_pretrained_cfg(cfg.architecture, cfg.pretrained or "") or {}
        mean = pre.get("mean", open_clip.OPENAI_DATASET_MEAN)
        std = pre.get("std", open_clip.OPENAI_DATASET_STD)
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        self.dim = int(model_cfg["embed_dim"])
        if self.dim != preset.dim:
            raise ExtractorError(f"preset {preset.name!r} says dim {preset.dim}, model has {self.dim}")
        self.policy = FramePolicy(
            size=(self.image_size, self.image_size), resize="cover", fps=cfg.fps,
            max_frames=cfg.max_frames, window_s=cfg.window_s,
        )
        prep = {"version": PREPROCESS_VERSION, "policy": asdict(self.policy), "mean": list(mean),
                "std": list(std), "black_mean": cfg.black_mean, "uniform_std": cfg.uniform_std}
        arch = {"architecture": cfg.architecture, "model_cfg": model_cfg}
        self.fingerprint = fingerprint(self.name, arch, weights_digest(weights), prep)

    def applies_to(self, item: MediaItem) -> bool:
        return item.info.has_video

    def work_units(self, prepared: Any) -> int:
        return len(prepared.frames)

    def prepare(self, item: MediaItem) -> ClipPrepared:
        decoded = decode_video(item.path, self.policy, item.info)
        keep = informative_frames(decoded.frames, self.config.black_mean, self.config.uniform_std)
        frames, times = decoded.frames[keep], decoded.times[keep]
        windows = group_windows(times, self.policy.window_s, item.info.duration)
        return ClipPrepared(item, frames, times, windows)

    def encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """uint8 [n, s, s, 3] frames -> float32 [n, dim] unit vectors, in mini-batches."""
        import torch
        import torch.nn.functional as F

        out = []
        for i in range(0, len(frames), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(frames[i : i + self.batch_size]))
            x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
            x = (x - self._mean) / self._std
            with inference(self.device, self.precision):
                f = self.model.encode_image(x)
            out.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_prepared(self, batch: Sequence[ClipPrepared]) -> list[SegmentVectors]:
        vectors = self.encode_frames(np.concatenate([p.frames for p in batch]))
        results, offset = [], 0
        for p in batch:
            own = vectors[offset : offset + len(p.frames)]
            offset += len(p.frames)
            win = np.stack([pool_unit(own[w.rows]) for w in p.windows])
            results.append(SegmentVectors(
                starts=np.array([w.start for w in p.windows], np.float64),
                ends=np.array([w.end for w in p.windows], np.float64),
                vectors=win, item_vector=pool_unit(win),
            ))
        return results

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch.nn.functional as F

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        tokens = self.tokenizer(list(texts)).to(self.device)
        with inference(self.device, self.precision):
            f = encode_text(self.model, tokens)  # the padding cut off: same vectors, less work
        return l2_normalize(F.normalize(f.float(), dim=-1).cpu().numpy())
