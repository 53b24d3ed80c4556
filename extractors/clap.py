"""CLAP audio extractor (transformers ClapModel): 10 s mono windows -> vectors; text -> same space.

The log-mel front end runs batched in torch (torchaudio) on the model's device with the
parameters of ClapFeatureExtractor for the unfused model ("rand_trunc": slaney mel
scale and norm, power 2, 10*log10 dB, no top_db); short windows are "repeatpad"ded.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmrec.errors import ExtractorError
from mmrec.media import iter_audio_windows

from .base import Extractor, MediaItem, SegmentVectors, l2_normalize, pool_unit
from .fingerprint import fingerprint, weights_digest
from .presets import PresetInfo, parse_config
from .registry import register_extractor
from .runtime import RuntimeOptions, bind_common, inference, seeded
from .weights import ResolvedWeights

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1


@dataclass(frozen=True)
class MelParams:
    """ClapFeatureExtractor's front end (defaults: laion/clap-htsat-unfused)."""

    sample_rate: int = 48_000
    window_s: float = 10.0
    n_fft: int = 1024
    hop_length: int = 480
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 14_000.0

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @classmethod
    def from_feature_extractor_config(cls, path: Path) -> MelParams:
        """Read a preprocessor_config.json (ClapFeatureExtractor) next to the weights."""
        c = json.loads(path.read_text(encoding="utf-8"))
        if c.get("truncation", "rand_trunc") == "fusion":
            log.warning("%s: fused CLAP front end is not supported; using the unfused one", path)
        return cls(
            sample_rate=int(c.get("sampling_rate", 48_000)),
            window_s=float(c.get("max_length_s", 10)),
            n_fft=int(c.get("fft_window_size", 1024)),
            hop_length=int(c.get("hop_length", 480)),
            n_mels=int(c.get("feature_size", 64)),
            f_min=float(c.get("frequency_min", 50)),
            f_max=float(c.get("frequency_max", 14_000)),
        )


@dataclass(frozen=True)
class ClapPresetConfig:
    """The "config" of a clap preset.

    model_cfg: an inline transformers ClapConfig (random tiny presets); otherwise the
        config comes from the weights directory. tokenizer: "weights" (the weights
        directory's own) or "package:<name>" (a packaged tokenizer directory).
    min_tail_s: a last window shorter than this is dropped when the file has others.
    """

    architecture: str
    model_cfg: Mapping[str, Any] | None = None
    tokenizer: str = "weights"
    batch_size: int = 8
    max_seconds: float | None = 1800.0
    min_tail_s: float = 1.0
    text_max_tokens: int = 77
    mel: Mapping[str, Any] | None = None


@dataclass
class ClapPrepared:
    """Repeat-padded windows of one file: float32 [n, window_samples] and their bounds."""

    item: MediaItem
    windows: np.ndarray
    starts: np.ndarray
    ends: np.ndarray


def repeat_pad(samples: np.ndarray, length: int) -> np.ndarray:
    """ClapFeatureExtractor's "repeatpad": whole repeats of the clip, then zeros, to length."""
    n = len(samples)
    if n >= length:
        return samples[:length]
    return np.pad(np.tile(samples, length // n), (0, length - (length // n) * n))


class LogMel:
    """Batched torch log-mel front end matching ClapFeatureExtractor (rand_trunc)."""

    def __init__(self, params: MelParams, device: Any) -> None:
        import torchaudio

        self.params = params
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=params.sample_rate, n_fft=params.n_fft, hop_length=params.hop_length,
            f_min=params.f_min, f_max=params.f_max, n_mels=params.n_mels, power=2.0,
            center=True, pad_mode="reflect", norm="slaney", mel_scale="slaney",
        ).to(device)
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None).to(device)

    def __call__(self, waves: Any) -> Any:
        """float32 [B, samples] -> input_features [B, 1, frames, n_mels] (fp32 even under autocast)."""
        import torch

        with torch.autocast(waves.device.type, enabled=False):
            spec = self.to_db(self.mel(waves.float()))
        return spec.transpose(1, 2).unsqueeze(1)


def _packaged_dir(spec: str) -> Path:
    mod = importlib.import_module(spec.removeprefix("package:"))
    return Path(mod.get_model_path())


@register_extractor
class ClapExtractor(Extractor):
    """CLAP (HTSAT audio tower + text tower) over 10 s windows."""

    name = "clap"
    modality = "audio"
    unit = "windows"
    has_text_tower = True

    def __init__(self, preset: PresetInfo, weights: ResolvedWeights, runtime: RuntimeOptions):
        from transformers import AutoTokenizer, ClapConfig, ClapModel

        self.config = cfg = parse_config(ClapPresetConfig, preset.config, preset.source or preset.name)
        bind_common(self, preset, weights, runtime, cfg.batch_size)
        model_dir = None
        if weights.path is not None:
            model_dir = weights.path if weights.path.is_dir() else weights.path.parent
            model = ClapModel.from_pretrained(model_dir, local_files_only=True)
        elif cfg.model_cfg is not None:
            with seeded(weights.seed or 0):
                model = ClapModel(ClapConfig(**dict(cfg.model_cfg)))
        else:
            raise ExtractorError(f"preset {preset.name!r}: random weights need an inline model_cfg")
        self.model = model.to(self.device).eval()
        params = MelParams()
        if model_dir is not None and (model_dir / "preprocessor_config.json").is_file():
            params = MelParams.from_feature_extractor_config(model_dir / "preprocessor_config.json")
        if cfg.mel:
            params = replace(params, **dict(cfg.mel))
        self.mel_params = params
        self.front_end = LogMel(params, self.device)
        if cfg.tokenizer == "weights":
            if model_dir is None:
                raise ExtractorError(f"preset {preset.name!r}: no weights dir to take a tokenizer from")
            tok_dir = model_dir
        else:
            tok_dir = _packaged_dir(cfg.tokenizer)
        self.tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
        self.dim = int(self.model.config.projection_dim)
        if self.dim != preset.dim:
            raise ExtractorError(f"preset {preset.name!r} says dim {preset.dim}, model has {self.dim}")
        arch = {"architecture": cfg.architecture, "model_cfg": self.model.config.to_dict()}
        arch["model_cfg"].pop("transformers_version", None)
        prep = {"version": PREPROCESS_VERSION, "mel": asdict(params), "min_tail_s": cfg.min_tail_s,
                "max_seconds": cfg.max_seconds, "tokenizer": cfg.tokenizer}
        self.fingerprint = fingerprint(self.name, arch, weights_digest(weights), prep)

    def applies_to(self, item: MediaItem) -> bool:
        return item.info.has_audio

    def work_units(self, prepared: Any) -> int:
        return len(prepared.windows)

    def prepare(self, item: MediaItem) -> ClapPrepared:
        p = self.mel_params
        wins = list(iter_audio_windows(item.path, p.sample_rate, p.window_s, item.info,
                                       self.config.max_seconds))
        if len(wins) > 1 and wins[-1].end - wins[-1].start < self.config.min_tail_s:
            wins = wins[:-1]
        return ClapPrepared(
            item,
            np.stack([repeat_pad(w.samples, p.window_samples) for w in wins]).astype(np.float32),
            np.array([w.start for w in wins], np.float64),
            np.array([w.end for w in wins], np.float64),
        )

    def features(self, waves: np.ndarray) -> Any:
        """float32 [B, samples] -> the model's input_features tensor on its device."""
        import torch

        return self.front_end(torch.from_numpy(np.ascontiguousarray(waves)).to(self.device))

    def encode_windows(self, waves: np.ndarray) -> np.ndarray:
        """float32 [n, samples] padded windows -> float32 [n, dim] unit vectors."""
        import torch
        import torch.nn.functional as F

        out = []
        for i in range(0, len(waves), self.batch_size):
            with inference(self.device, self.precision):
                feats = self.features(waves[i : i + self.batch_size])
                is_longer = torch.zeros(len(feats), 1, dtype=torch.bool, device=self.device)
                o = self.model.get_audio_features(input_features=feats, is_longer=is_longer)
            f = o.pooler_output if hasattr(o, "pooler_output") else o
            out.append(F.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_prepared(self, batch: Sequence[ClapPrepared]) -> list[SegmentVectors]:
        vectors = self.encode_windows(np.concatenate([p.windows for p in batch]))
        results, offset = [], 0
        for p in batch:
            own = l2_normalize(vectors[offset : offset + len(p.windows)])
            offset += len(p.windows)
            results.append(SegmentVectors(p.starts, p.ends, own, pool_unit(own)))
        return results

    def embed_text(self, texts: list[str]) -> np.ndarray:
        import torch.nn.functional as F

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        enc = self.tokenizer(list(texts), padding=True, truncation=True,
                             max_length=self.config.text_max_tokens, return_tensors="pt")
        with inference(self.device, self.precision):
            o = self.model.get_text_features(input_ids=enc["input_ids"].to(self.device),
                                             attention_mask=enc["attention_mask"].to(self.device))
        f = o.pooler_output if hasattr(o, "pooler_output") else o
        return l2_normalize(F.normalize(f.float(), dim=-1).cpu().numpy())
