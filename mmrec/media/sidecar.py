"""Text that describes a media file: sidecar files next to it plus container tags.

Read: `<stem>.txt` (description), `<stem>.json` (title, description, tags),
`<stem>.srt` / `<stem>.vtt` and language variants like `<stem>.en.srt` (subtitles
with times), text subtitle streams inside the container, and the container's tags.
A broken sidecar never fails the media file: it becomes a warning on the record.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mmrec.errors import MediaError, printable
from mmrec.media.probe import MediaInfo
from mmrec.media.runner import find_tool, input_args, input_url, run_to_end

log = logging.getLogger(__name__)

SUBTITLE_SUFFIXES = (".srt", ".vtt")
_SPLIT_TAGS = re.compile(r"[,;|#\n]+")
_WORD_BREAKS = re.compile(r"[_\-.+]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: [start, end) seconds and its text."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class TextMeta:
    """All the words known about a file, with where the title came from."""

    title: str
    title_source: str  # "sidecar", "tag" or "filename"
    description: str = ""
    tags: tuple[str, ...] = ()
    subtitles: tuple[Cue, ...] = ()
    artist: str = ""
    album: str = ""
    genre: str = ""
    comment: str = ""
    language: str = ""
    sources: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def subtitle_text(self) -> str:
        return " ".join(c.text for c in self.subtitles)

    def fields(self) -> dict[str, str]:
        """The text fields by name, empty ones left out (what a text extractor embeds)."""
        out = {
            "title": self.title,
            "description": self.description,
            "tags": ", ".join(self.tags),
            "artist": self.artist,
            "album": self.album,
            "genre": self.genre,
            "comment": self.comment,
            "subtitles": self.subtitle_text,
        }
        return {k: v for k, v in out.items() if v}


def readable_title(stem: str) -> str:
    """Turn a file stem into words: "my_holiday-video.2019" -> "my holiday video 2019".

    A name that is not valid UTF-8 (undecodable bytes kept as surrogate escapes, e.g.
    b"caf\\xe9") is read as Windows-1252, the usual legacy encoding: "café".
    """
    stem = _decode_name(stem)
    text = _CAMEL.sub(" ", stem)
    text = _WORD_BREAKS.sub(" ", text)
    return " ".join(text.split()) or stem


def _decode_name(name: str) -> str:
    """A file name as real text: undecodable bytes re-read as cp1252, else replaced."""
    try:
        raw = os.fsencode(name)
    except UnicodeError:  # lone surrogates that are no file name bytes
        return name.encode("utf-8", "replace").decode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def _is_file(path: Path) -> bool:
    """Path.is_file() that says False instead of raising (a name grown past 255 bytes)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _split_tags(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    elif value is None:
        items = []
    else:
        items = _SPLIT_TAGS.split(str(value))
    return [t.strip() for t in items if t and t.strip()]


def _cues_from(caps: object) -> list[Cue]:
    cues = []
    for c in caps:  # type: ignore[attr-defined]
        text = " ".join(c.text.split())
        if text:
            cues.append(Cue(c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, text))
    return cues


def parse_subtitles(path: str | Path) -> list[Cue]:
    """Cues of an .srt or .vtt file, in time order."""
    import webvtt  # lazy: only needed when subtitles exist

    p = Path(path)
    if p.suffix.lower() == ".srt":
        return sorted(_cues_from(webvtt.from_srt(str(p))), key=lambda c: c.start)
    text = p.read_text(encoding="utf-8-sig", errors="replace")
    return sorted(_cues_from(webvtt.from_buffer(io.StringIO(text))), key=lambda c: c.start)


def embedded_subtitles(info: MediaInfo, timeout: float = 60.0) -> list[Cue]:
    """Cues of the first text subtitle stream inside the container, if any.

    Unreadable or malformed subtitles (a corrupt file, a timeout) log a warning and
    give no cues: they never fail the media file.
    """
    import webvtt

    streams = [s for s in info.subtitles if s.is_text]
    if not streams:
        return []
    k = info.subtitles.index(streams[0])
    args = [find_tool("ffmpeg"), "-nostdin", "-v", "error", *input_args(), "-i",
            input_url(info.path), "-map", f"0:s:{k}", "-f", "srt", "pipe:"]
    try:
        out, err, code = run_to_end(args, info.path, timeout)
    except MediaError as e:  # FfmpegTimeoutError
        log.warning("%s: could not read embedded subtitles (%s)", printable(info.path), e.reason)
        return []
    if code != 0 or not out.strip():
        last = err.strip().splitlines()[-1] if err.strip() else f"ffmpeg exited with code {code}"
        log.warning("%s: could not read embedded subtitles (%s)", printable(info.path),
                    printable(last[-200:]))
        return []
    text = out.decode("utf-8", "replace")
    try:
        return _cues_from(webvtt.from_buffer(io.StringIO(text), format="srt"))
    except Exception as e:  # webvtt raises several types for malformed text
        log.warning("%s: ignored malformed embedded subtitles (%s: %s)", printable(info.path),
                    type(e).__name__, e)
        return []


def _sidecars(media: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """`<stem><suffix>` first, then language variants `<stem>.<lang><suffix>`, sorted."""
    exact = [media.with_suffix(s) for s in suffixes if _is_file(media.with_suffix(s))]
    try:
        variants = sorted(
            p for s in suffixes for p in media.parent.glob(f"{_glob_escape(media.stem)}.*{s}")
            if _is_file(p) and p not in exact and p != media
        )
    except OSError:  # the directory vanished or cannot be listed
        variants = []
    return exact + variants


def _glob_escape(text: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", text)


def read_text_meta(
    path: str | Path, info: MediaInfo | None = None, embedded: bool = True,
    timeout: float = 60.0,
) -> TextMeta:
    """Collect title, description, tags and subtitles for a media file.

    Title precedence: sidecar JSON, container `title` tag, readable file name.
    Never raises for a broken, unreadable or missing sidecar (each becomes one printable
    line in `warnings`), nor for an odd file name (non-UTF-8, 255 bytes long); embedded
    subtitles that fail or take longer than `timeout` seconds are logged and left out.
    """
    media = Path(path)
    tags = info.tags if info else {}
    sources: list[str] = []
    warnings: list[str] = []
    title, title_source = "", "filename"
    description, tag_list = "", _split_tags(tags.get("keywords"))

    jpath = media.with_suffix(".json")
    if _is_file(jpath):
        try:
            data = json.loads(jpath.read_text(encoding="utf-8-sig"))
            if not isinstance(data, dict):
                raise ValueError("top level is not an object")
            title = str(data.get("title") or "").strip()
            title_source = "sidecar" if title else title_source
            description = str(data.get("description") or "").strip()
            tag_list = _split_tags(data.get("tags")) or tag_list
            sources.append(str(jpath))
        except (OSError, ValueError) as e:
            warnings.append(printable(f"{jpath}: ignored sidecar JSON ({e})"))
    tpath = media.with_suffix(".txt")
    if _is_file(tpath):
        try:
            txt = " ".join(tpath.read_text(encoding="utf-8-sig", errors="replace").split())
            description = f"{description} {txt}".strip() if description else txt
            sources.append(str(tpath))
        except OSError as e:
            warnings.append(printable(f"{tpath}: ignored sidecar text ({e})"))

    cues: list[Cue] = []
    for sub in _sidecars(media, SUBTITLE_SUFFIXES):
        try:
            cues = parse_subtitles(sub)
            sources.append(str(sub))
            break
        except Exception as e:  # webvtt raises several types for malformed files
            warnings.append(printable(f"{sub}: ignored subtitles ({type(e).__name__}: {e})"))
    if not cues and embedded and info is not None:
        cues = embedded_subtitles(info, timeout)
        if cues:
            sources.append(f"{media}#subtitles")

    if not title and tags.get("title"):
        title, title_source = tags["title"].strip(), "tag"
    if not title:
        title = readable_title(media.stem)
    for w in warnings:
        log.warning("%s", w)
    return TextMeta(
        title=title,
        title_source=title_source,
        description=description or tags.get("description", "").strip(),
        tags=tuple(tag_list),
        subtitles=tuple(cues),
        artist=tags.get("artist", "").strip(),
        album=tags.get("album", "").strip(),
        genre=tags.get("genre", "").strip(),
        comment=tags.get("comment", "").strip(),
        language=tags.get("language", "").strip(),
        sources=tuple(sources),
        warnings=tuple(warnings),
    )
