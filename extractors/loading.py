"""Build extractors from presets and sets: the functions behind mmrec.extractors' API."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from mmrec.errors import ConfigError, WeightsNotFoundError
from mmrec.fusion import TEXT_MODALITIES

from .base import Extractor, Modality
from .presets import ExtractorSet, PresetCatalog, PresetInfo, presets
from .registry import ExtractorRegistry, registry
from .runtime import RuntimeOptions, import_transformers_without_sklearn
from .timed_text import TextSource, build_sources
from .weights import resolve_weights

log = logging.getLogger(__name__)


def load_extractor(
    preset: str | PresetInfo,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    model_paths: Mapping[str, str] | None = None,
    precision: str | None = None,
    extractors: ExtractorRegistry | None = None,
    catalog: PresetCatalog | None = None,
) -> Extractor:
    """Build the extractor of a preset with its weights (loads the model).

    Args:
        preset: a preset name ("clip-vit-b-32", "tiny-clap", ...) or a PresetInfo.
        device: "cuda", "cuda:1", "cpu"...; default cuda when available, else cpu.
        batch_size: frames/windows/chunks per model call; default from the preset.
        model_paths: {preset: local weights file or directory}; overrides
            MMREC_MODEL_PATHS, the installed package and the hub cache.
        precision: "fp32", "fp16" or "bf16" (autocast, CUDA only); default fp16 on
            CUDA, fp32 on CPU.
        extractors, catalog: another registry / preset catalog (tests, plugins).

    Raises:
        UnknownExtractorError: unknown preset or extractor name (lists the known ones).
        WeightsNotFoundError: no local weights; says how to pass --model-path.
    """
    info = preset if isinstance(preset, PresetInfo) else (catalog or presets).get(preset)
    cls = (extractors or registry).get(info.extractor)
    weights = resolve_weights(info, model_paths)
    import_transformers_without_sklearn()
    extractor = cls.from_preset(info, weights, RuntimeOptions(device, batch_size, precision))
    if extractor.is_random:
        log.info("extractor %s (%s) runs on RANDOM weights: vectors carry no meaning",
                    info.name, info.extractor)
    return extractor


def load_extractor_set(
    name: str,
    *,
    device: str | None = None,
    batch_size: int | None = None,
    model_paths: Mapping[str, str] | None = None,
    precision: str | None = None,
    catalog: PresetCatalog | None = None,
    modalities: Collection[str] | None = None,
) -> list[Extractor]:
    """Build the extractors of a set ("default", "offline-tiny"), same kwargs as load_extractor;
    `modalities` keeps only those (a text query weighting only text loads no CLIP)."""
    cat = catalog or presets
    return [
        load_extractor(p, device=device, batch_size=batch_size, model_paths=model_paths,
                       precision=precision, catalog=cat)
        for p, modality in set_modalities(name, cat).items()
        if modalities is None or modality in modalities
    ]


def attach_sources(
    extractors: Sequence[Extractor],
    set_name: str,
    *,
    only: Collection[str] | None = None,
    device: str | None = None,
    catalog: PresetCatalog | None = None,
    model_paths: Mapping[str, str] | None = None,
) -> list[TextSource]:
    """Build the set's text sources (speech, on-screen text; `only` keeps those named, () none)
    and give them to its text extractors, whose segments and ingest fingerprints then cover
    their transcripts. Ingest calls this; queries never need the sources' models.
    `model_paths` may name a source too (`--model-path speech=/models/whisper-small`): that
    becomes its `model` option."""
    configs = (catalog or presets).get_set(set_name).sources
    unknown = sorted(set(only or ()) - set(configs))
    if unknown:
        raise ConfigError(f"set {set_name!r} has no text source {', '.join(unknown)} "
                          f"(it has: {', '.join(configs) or 'none'})")
    chosen = {n: ({**c, "model": model_paths[n]} if model_paths and n in model_paths else c)
              for n, c in configs.items() if only is None or n in only}
    sources = build_sources(chosen, RuntimeOptions(device, None, None))
    for e in extractors:
        if e.modality in TEXT_MODALITIES:
            e.text_sources = tuple(sources)
    return sources


def set_modalities(name: str, catalog: PresetCatalog | None = None) -> dict[str, Modality]:
    """{preset: modality} of a set, in its order, without loading any model."""
    cat = catalog or presets
    return {p: registry.get(cat.get(p).extractor).modality for p in cat.get_set(name).presets}


def list_presets(catalog: PresetCatalog | None = None) -> list[PresetInfo]:
    """All presets, sorted by name."""
    return (catalog or presets).presets()


def list_sets(catalog: PresetCatalog | None = None) -> list[ExtractorSet]:
    """All extractor sets, sorted by name."""
    return (catalog or presets).sets()


@dataclass(frozen=True)
class PresetStatus:
    """A preset as the `mmrec extractors` command lists it (no model loaded)."""

    preset: str
    extractor: str
    modality: Modality | None
    dim: int
    weights: str
    real_weights: bool
    available: bool
    problem: str = ""


def preset_status(
    preset: PresetInfo,
    model_paths: Mapping[str, str] | None = None,
    extractors: ExtractorRegistry | None = None,
) -> PresetStatus:
    """Resolve a preset's extractor class and weights without building the model."""
    problem, modality = "", None
    try:
        modality = (extractors or registry).get(preset.extractor).modality
    except Exception as e:  # an unknown or broken extractor is listed, not fatal
        problem = str(e)
    try:
        w = resolve_weights(preset, model_paths)
        source, real, available = w.source, not w.is_random, not problem
    except WeightsNotFoundError as e:
        source, real, available = f"missing ({preset.weights.describe()})", True, False
        problem = problem or str(e)
    return PresetStatus(preset.name, preset.extractor, modality, preset.dim, source, real,
                        available, problem)
