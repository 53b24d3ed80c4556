"""Pluggable extractors: media in, vectors out.

Importing this package is cheap (no torch): the model modules import torch when an
extractor is built. Typical use:

    from mmrec.extractors import load_extractor_set
    extractors = load_extractor_set("offline-tiny")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrec.lazy import lazy_attributes

from .base import (
    MODALITIES,
    Extractor,
    MediaItem,
    Modality,
    SegmentVectors,
    embed_texts,
    l2_normalize,
    pool_unit,
)
from .loading import (
    PresetStatus,
    attach_sources,
    list_presets,
    list_sets,
    load_extractor,
    load_extractor_set,
    preset_status,
    set_modalities,
)
from .presets import ExtractorSet, PresetCatalog, PresetInfo, WeightsSpec, presets
from .registry import ExtractorRegistry, register_extractor, registry
from .runtime import RuntimeOptions
from .timed_text import SOURCES, TextSource, TimedText, Transcript, register_source, source_class
from .weights import ResolvedWeights, parse_model_paths, resolve_weights

if TYPE_CHECKING:
    from .pipeline import ItemResult, embed_files

__getattr__ = lazy_attributes(__name__, {"ItemResult": ".pipeline", "embed_files": ".pipeline"})


__all__ = [
    "MODALITIES", "Extractor", "ExtractorRegistry", "ExtractorSet", "ItemResult", "MediaItem",
    "Modality", "PresetCatalog", "PresetInfo", "PresetStatus", "ResolvedWeights",
    "RuntimeOptions", "SegmentVectors", "WeightsSpec", "embed_files", "embed_texts", "l2_normalize",
    "list_presets", "list_sets", "load_extractor", "load_extractor_set", "parse_model_paths",
    "pool_unit", "preset_status", "presets", "register_extractor", "registry",
    "resolve_weights", "set_modalities", "SOURCES", "TextSource", "TimedText", "Transcript",
    "attach_sources", "register_source", "source_class",
]
