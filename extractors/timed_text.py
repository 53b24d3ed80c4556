"""Text sources: engines that read timed text out of the media itself (speech, on-screen
text). Their cues become text segments beside titles and subtitles, so a text query can
land on the moment where the words are said or shown.

A source runs once per file in the decoding threads, before the extractors; every text
extractor of the set embeds the same transcript. Sources register by name like
extractors; a set names the ones it runs and their options.
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from mmrec.errors import ExtractorError
from mmrec.media import Cue

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .base import MediaItem
    from .runtime import RuntimeOptions


# One cue: text read between start and end (seconds), the same record as a subtitle cue,
# so the text extractors chunk subtitles and what the sources read alike.
TimedText = Cue


@dataclass(frozen=True)
class Transcript:
    """What one source read from one file: timed cues and, when known, the language."""

    source: str  # the source's name: "speech", "screen"
    cues: tuple[TimedText, ...] = ()
    language: str | None = None

    @property
    def text(self) -> str:
        """The whole transcript as one string (cues joined by spaces)."""
        return " ".join(c.text for c in self.cues if c.text)

    def __bool__(self) -> bool:
        return any(c.text for c in self.cues)


class TextSource(ABC):
    """Base class of a text source. Subclasses register with @register_source.

    Class attributes:
        name: registered name and the segment label of its cues ("speech", "screen").
    Instance attributes:
        fingerprint: changes whenever the transcript could change (engine, model,
            options): a text extractor's fingerprint covers it, so a new one re-reads.
    """

    name: ClassVar[str]
    fingerprint: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any], runtime: RuntimeOptions) -> TextSource:
        """Build the source from its options in a set file (loads its model)."""
        return cls(config, runtime)  # type: ignore[call-arg]

    def applies_to(self, item: MediaItem) -> bool:
        """Whether the file has anything this source reads (an audio stream, a picture)."""
        return True

    @abstractmethod
    def read(self, item: MediaItem) -> Transcript:
        """The file's timed text; an empty Transcript when there is none (silence, no text
        on screen). Raises a MediaError/ExtractorError naming the file when it cannot read."""


SOURCES: dict[str, type[TextSource]] = {}


def register_source(cls: type[TextSource]) -> type[TextSource]:
    """Class decorator: register a TextSource subclass under cls.name."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ExtractorError(f"{cls.__qualname__} needs a class attribute `name`")
    if SOURCES.get(name, cls) is not cls:
        raise ExtractorError(f"text source {name!r} is already registered by {SOURCES[name].__qualname__}")
    SOURCES[name] = cls
    return cls


# Built-in sources live in their own modules, imported only when a set names them (each
# brings an engine: faster-whisper, Tesseract).
BUILTIN = {"speech": "mmrec.extractors.speech", "screen": "mmrec.extractors.screen_text"}


def source_class(name: str) -> type[TextSource]:
    """The TextSource class registered under name (a built-in is imported on first use)."""
    if name not in SOURCES and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    if name not in SOURCES:
        raise ExtractorError(f"unknown text source {name!r}; known sources: "
                             f"{', '.join(sorted(set(SOURCES) | set(BUILTIN)))}")
    return SOURCES[name]


def build_sources(configs: Mapping[str, Mapping[str, Any]], runtime: RuntimeOptions) -> list[TextSource]:
    """The sources of a set ({name: options}), in its order."""
    return [source_class(name).from_config(dict(cfg or {}), runtime) for name, cfg in configs.items()]


def read_sources(item: MediaItem, sources: Sequence[TextSource]) -> list[Transcript]:
    """The item's transcripts from these sources, each read once per file (kept on the item).

    A source that fails on a file logs one line naming the file and the reason and gives an
    empty transcript: the title, description and subtitles are still embedded."""
    for source in sources:
        if source.name in item.transcripts:
            continue
        if not source.applies_to(item):  # e.g. no picture to read: None, not an empty read
            item.transcripts[source.name] = None
            continue
        try:
            item.transcripts[source.name] = source.read(item)
        except Exception as e:  # one file's bad stream never stops its text or the batch
            log.warning("%s: %s text not read: %s", item.path, source.name, e)
            item.transcripts[source.name] = Transcript(source.name)
    return [t for s in sources if (t := item.transcripts[s.name]) is not None]
