"""Where and how a model runs: device, batch size, precision (autocast on CUDA only)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from mmrec.errors import ConfigError

log = logging.getLogger(__name__)
Precision = Literal["fp32", "fp16", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class RuntimeOptions:
    """What the caller asked for; None means the extractor's/preset's default."""

    device: str | None = None
    batch_size: int | None = None
    precision: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size is not None and self.batch_size <= 0:
            raise ConfigError(f"batch_size must be > 0, got {self.batch_size}")
        if self.precision is not None and self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")


def resolve_device(device: str | None) -> Any:
    """torch.device: the one asked for, else cuda when available, else cpu."""
    import torch

    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(device: Any, precision: str | None) -> Precision:
    """fp16 by default on CUDA, fp32 on CPU (reduced precision is CUDA-only here)."""
    if device.type != "cuda":
        if precision not in (None, "fp32"):
            log.info("precision %s ignored on %s: running in fp32", precision, device)
        return "fp32"
    return precision or "fp16"  # type: ignore[return-value]


@contextlib.contextmanager
def inference(device: Any, precision: Precision) -> Iterator[None]:
    """torch.inference_mode(), plus fp16/bf16 autocast on CUDA."""
    import torch

    with torch.inference_mode():
        if device.type == "cuda" and precision != "fp32":
            dtype = torch.float16 if precision == "fp16" else torch.bfloat16
            with torch.autocast("cuda", dtype=dtype):
                yield
        else:
            yield


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """A scope where torch's CPU RNG is seeded, restored afterwards (for random init)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def bind_common(extractor: Any, preset: Any, weights: Any, runtime: RuntimeOptions,
                default_batch: int) -> None:
    """Set the attributes every built-in extractor derives the same way from
    (preset, weights, runtime): preset name, weights source, device, precision, batch size."""
    extractor.preset = preset.name
    extractor.preset_config = dict(preset.config)
    extractor.weights_source = weights.source
    extractor.is_random = weights.is_random
    extractor.device = resolve_device(runtime.device)
    extractor.precision = resolve_precision(extractor.device, runtime.precision)
    extractor.batch_size = runtime.batch_size or default_batch


# transformers imports scikit-learn, and with it SciPy's stats (~1 s on two cores, a sixth
# of a cold text query), as soon as any model class loads: its assisted text generation
# wants sklearn's roc_curve, and mmrec never generates text. The module that imports it
# loads once with sklearn hidden; sklearn stays importable for everything else.
_SKLEARN_USER = "transformers.generation.candidate_generator"


def import_transformers_without_sklearn() -> None:
    """Import transformers' generation code without scikit-learn (see above); idempotent."""
    if _SKLEARN_USER in sys.modules or "sklearn" in sys.modules:
        return
    if importlib.util.find_spec("transformers") is None:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]  # find_spec() -> None: "absent"
    try:
        importlib.import_module(_SKLEARN_USER)
    finally:
        if sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]
        from transformers.utils import import_utils

        import_utils.is_sklearn_available.cache_clear()
