"""The extractor registry: name -> Extractor class, filled by a decorator and entry points.

Built-in extractors (clip, clap, text) and outside packages register the same way: an
entry point in the `mmrec.extractors` group that names the class. Entry points are
loaded on the first lookup. The registry is a plain object: tests build their own.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import TypeVar

from mmrec.errors import DuplicateExtractorError, ExtractorError, UnknownExtractorError

from .base import MODALITIES, Extractor

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "mmrec.extractors"
E = TypeVar("E", bound=type[Extractor])


class ExtractorRegistry:
    """Extractor classes by name. A name maps to one class; a second class is refused."""

    def __init__(self, entry_point_group: str | None = ENTRY_POINT_GROUP) -> None:
        self.entry_point_group = entry_point_group
        self._classes: dict[str, type[Extractor]] = {}
        self._origins: dict[str, str] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, cls: E, *, origin: str = "") -> E:
        """Add an Extractor subclass under cls.name (usable as a class decorator).

        Raises:
            ExtractorError: cls is not a concrete Extractor with a name and a known modality.
            DuplicateExtractorError: another class already has that name.
        """
        if not (isinstance(cls, type) and issubclass(cls, Extractor)):
            raise ExtractorError(f"{cls!r} is not a subclass of mmrec.extractors.Extractor")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise ExtractorError(f"{cls.__qualname__} needs a class attribute `name`")
        if getattr(cls, "modality", None) not in MODALITIES:
            raise ExtractorError(
                f"{cls.__qualname__}.modality must be one of {MODALITIES}, "
                f"got {getattr(cls, 'modality', None)!r}"
            )
        existing = self._classes.get(name)
        if existing is cls:
            return cls
        if existing is not None:
            raise DuplicateExtractorError(
                f"extractor name {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__} ({self._origins[name]}); "
                f"refusing {cls.__module__}.{cls.__qualname__}: pick another name"
            )
        self._classes[name] = cls
        self._origins[name] = origin or f"{cls.__module__}"
        return cls

    def load_entry_points(self) -> None:
        """Register every class named in the entry-point group (once)."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group or ""):
            try:
                cls = ep.load()
            except Exception as e:  # a broken plugin must not hide the others
                log.warning("could not load extractor entry point %s (%s): %s", ep.name, ep.value, e)
                continue
            if getattr(cls, "name", None) != ep.name:
                log.warning(
                    "entry point %r points to %s whose name is %r; skipped",
                    ep.name, ep.value, getattr(cls, "name", None),
                )
                continue
            self.register(cls, origin=f"entry point {ep.value}")

    def get(self, name: str) -> type[Extractor]:
        """The class registered under name; UnknownExtractorError lists the known ones."""
        if name not in self._classes:
            self.load_entry_points()
        if name not in self._classes:
            raise UnknownExtractorError(
                f"unknown extractor {name!r}; known extractors: "
                f"{', '.join(self.names()) or '(none)'}"
            )
        return self._classes[name]

    def names(self) -> list[str]:
        self.load_entry_points()
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        self.load_entry_points()
        return name in self._classes


registry = ExtractorRegistry()


def register_extractor(cls: E) -> E:
    """Class decorator: register an Extractor subclass in the default registry."""
    return registry.register(cls)
