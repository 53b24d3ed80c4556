"""The error hierarchy: every failure mmrec raises on purpose is an MmrecError.

Messages are one line that names the bad value (usually a file) and the reason,
and where there is one, what to do next. Extra context (ffmpeg's stderr) rides
along as attributes so the CLI can show or store it without cluttering the line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """`text` made safe for one line of UTF-8 output.

    Undecodable bytes of a file name (surrogate escapes, e.g. b"caf\\xe9" read on a UTF-8
    system) become `\\xe9`, and control characters (a newline in a file name) become
    escapes, so the message never fails to print and never spans two lines.
    """
    if not isinstance(text, str):
        text = os.fsdecode(text) if isinstance(text, bytes) else str(text)
    try:
        safe = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file name byte maps to
        safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), safe)


class MmrecError(Exception):
    """Base class for errors mmrec raises deliberately."""


class ConfigError(MmrecError, ValueError):
    """A configuration value is invalid; the message names the key and the fix."""


class FfmpegMissingError(MmrecError):
    """ffmpeg/ffprobe is not installed or not on PATH."""

    def __init__(self, tool: str = "ffmpeg") -> None:
        super().__init__(
            f"{tool} was not found on PATH: install it (Debian/Ubuntu: "
            "`sudo apt-get install ffmpeg`, macOS: `brew install ffmpeg`) or run `make demo`"
        )
        self.tool = tool


class MediaError(MmrecError):
    """A media file could not be probed or decoded.

    Attributes:
        path: the file.
        reason: a short human sentence.
        stderr_tail: the last lines ffmpeg printed, if ffmpeg was involved.
        stage: "probe", "decode" or "sidecar".
        display_path: `path` made printable (see `printable`); the message uses it, so
            str(error) is always one line that encodes to UTF-8, whatever the file name.
    """

    stage = "decode"

    def __init__(self, path: str | Path, reason: str, stderr_tail: str = "") -> None:
        self.path = os.fsdecode(path) if isinstance(path, bytes) else str(path)
        self.reason = reason
        self.stderr_tail = stderr_tail
        self.display_path = printable(self.path)
        super().__init__(f"{self.display_path}: {printable(reason)}")


class MediaNotFoundError(MediaError, FileNotFoundError):
    """The path does not exist or is not a regular file."""

    stage = "probe"


class EmptyFileError(MediaError):
    """The file has zero bytes."""

    stage = "probe"


class UnreadableMediaError(MediaError):
    """ffprobe could not read the file: not media, corrupt, or truncated before its index."""

    stage = "probe"


class MediaPermissionError(UnreadableMediaError, PermissionError):
    """The file exists but this process may not read it (file mode, ACL, directory)."""


class NoMediaStreamError(MediaError):
    """The container holds no decodable audio or video stream."""

    stage = "probe"


class DecodeError(MediaError):
    """ffmpeg failed while decoding a stream that probed fine."""


class TruncatedMediaError(DecodeError):
    """Decoding stopped well short of the duration the container announces."""


class MediaChangedError(MediaError):
    """The file changed (size or mtime) between probe and the end of decoding: it is still
    being written or was replaced; what was decoded may not match what is on disk."""


class FfmpegTimeoutError(MediaError):
    """An ffmpeg/ffprobe call ran past its time limit and was killed."""


class ExtractorError(MmrecError):
    """An extractor could not be built or run."""


class UnknownExtractorError(ExtractorError, KeyError):
    """No extractor or preset is registered under that name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicateExtractorError(ExtractorError):
    """An extractor name is already registered."""


class WeightsNotFoundError(ExtractorError):
    """Real weights were asked for but none are available offline."""
