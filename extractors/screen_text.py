"""On-screen text (OCR) as a text source: sampled frames -> Tesseract -> timed cues.

Frames come from the same ffmpeg sampler as the visual extractor, but at a size fit for
reading (up to 1280 px wide, small videos upscaled 1.5x) and a low rate (0.5 fps). A frame
nearly identical to the previous one reuses its text instead of running OCR again, and
consecutive frames showing the same text merge into one cue.

Tesseract runs as one single-threaded process per batch of frames (OMP_THREAD_LIMIT=1 in
its own environment): parallelism comes from mmrec's decode threads, and Tesseract's
OpenMP threads only oversubscribe the cores (1.7x to 4x slower per frame on 2 cores). A
batch pays the process start and language load (0.1 s for eng, 0.25 s with chi_sim) once.
The binary is called directly rather than through pytesseract: pytesseract keeps the
binary path in a module global and its child processes inherit os.environ, so a binary
per instance and OMP_THREAD_LIMIT=1 would need process-wide mutation (which would also cap
torch's OpenMP threads when set before torch loads).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrec.errors import ConfigError, DecodeError, ExtractorError
from mmrec.media import FramePolicy, iter_frames

from .fingerprint import file_digest, fingerprint
from .presets import parse_config
from .timed_text import TextSource, TimedText, Transcript, register_source

if TYPE_CHECKING:
    from .base import MediaItem
    from .runtime import RuntimeOptions

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-eng"
SHORT_WORD_CONFIDENCE = 80.0
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_TESSDATA_DIR = re.compile(r'"([^"]+)"')
_SPACES = re.compile(r"\s+")
_HAN_KANA = "\u3040-\u30ff\u3400-\u9fff"  # Korean (Hangul) keeps its spaces
_CJK_GAP = re.compile(f"(?<=[{_HAN_KANA}]) (?=[{_HAN_KANA}])")


def _debian_package(lang: str) -> str:
    """The Debian package holding a Tesseract language ("chi_sim" -> tesseract-ocr-chi-sim)."""
    return "tesseract-ocr-" + lang.lower().replace("_", "-")


@dataclass(frozen=True)
class ScreenTextConfig:
    """Options of the "screen" source in a set file.

    languages: Tesseract languages; None means "eng", plus "chi_sim" when installed.
    tesseract_cmd: the tesseract binary (a name on PATH or a path).
    fps / max_frames: sampling rate cap and frame cap per file (the rate is lowered so
        max_frames span the file). max_width: frames are scaled down to this width;
        frames narrower than upscale_below are scaled up by `upscale` (small text reads
        better: 9 px text in a 320x240 clip is read at 1.5x, not at 1x; 2x costs more).
    psm: Tesseract page segmentation mode (11: sparse text, fit for scene text).
    min_confidence: words Tesseract is less sure of (0..100) are dropped; a line made
        only of short words (3 characters, 2 CJK) needs SHORT_WORD_CONFIDENCE: texture
        read as words scored up to 66 (3 letters) and 86 (2), real words 57-97.
    same_frame_diff: a frame whose 16x16-block grey means all differ from the previous
        frame's by less than this (0..255) reuses its text.
    merge_ratio: consecutive frames whose normalised texts match at least this closely
        (difflib ratio) merge into one cue.
    timeout_s: time limit of Tesseract per frame; a frame past it is skipped.
    batch_frames: frames read by one Tesseract process (its start-up is paid once).
    """

    languages: tuple[str, ...] | None = None
    tesseract_cmd: str = "tesseract"
    fps: float = 0.5
    max_frames: int | None = 120
    max_width: int = 1280
    upscale_below: int = 480
    upscale: float = 1.5
    psm: int = 11
    min_confidence: float = 60.0
    same_frame_diff: float = 8.0
    merge_ratio: float = 0.8
    timeout_s: float = 30.0
    batch_frames: int = 8

    def __post_init__(self) -> None:
        langs = self.languages
        if isinstance(langs, str):
            langs = tuple(p for p in langs.replace(",", "+").split("+") if p)
        elif langs is not None:
            langs = tuple(langs)
        if langs is not None and (not langs or not all(isinstance(x, str) and x for x in langs)):
            raise ConfigError(f"screen: languages must be Tesseract language names, got {self.languages!r}")
        object.__setattr__(self, "languages", langs)
        if self.fps <= 0:
            raise ConfigError(f"screen: fps must be > 0, got {self.fps}")
        if self.max_frames is not None and self.max_frames <= 0:
            raise ConfigError(f"screen: max_frames must be > 0 or null, got {self.max_frames}")
        if not 1 <= self.upscale <= 4:
            raise ConfigError(f"screen: upscale must be in 1..4, got {self.upscale}")
        if self.max_width < 16 or self.upscale_below < 0:
            raise ConfigError(f"screen: max_width must be >= 16 and upscale_below >= 0, got "
                              f"{self.max_width} and {self.upscale_below}")
        if self.psm not in range(14):
            raise ConfigError(f"screen: psm must be a Tesseract page segmentation mode 0..13, got {self.psm}")
        if not 0 <= self.min_confidence <= 100:
            raise ConfigError(f"screen: min_confidence must be in 0..100, got {self.min_confidence}")
        if not 0 < self.merge_ratio <= 1:
            raise ConfigError(f"screen: merge_ratio must be in (0, 1], got {self.merge_ratio}")
        if self.batch_frames <= 0:
            raise ConfigError(f"screen: batch_frames must be > 0, got {self.batch_frames}")
        if self.same_frame_diff < 0 or self.timeout_s <= 0:
            raise ConfigError(f"screen: same_frame_diff must be >= 0 and timeout_s > 0, got "
                              f"{self.same_frame_diff} and {self.timeout_s}")


def normalise(text: str) -> str:
    """Lowercase with whitespace collapsed: the form frames are compared in."""
    return _SPACES.sub(" ", text).strip().lower()


def to_gray(frame: np.ndarray) -> np.ndarray:
    """uint8 [h, w] luma of an RGB (or already grey) uint8 frame."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 3:
        return np.clip(frame.astype(np.float32) @ _LUMA, 0, 255).astype(np.uint8)
    if frame.ndim == 2:
        return frame.astype(np.uint8)
    raise ValueError(f"expected an RGB frame [h, w, 3] or grey [h, w], got shape {frame.shape}")


def thumbnail(gray: np.ndarray, block: int = 16) -> np.ndarray:
    """float32 means of block x block tiles: the small picture frames are compared by."""
    h, w = (gray.shape[0] // block) * block, (gray.shape[1] // block) * block
    if h == 0 or w == 0:
        return gray.astype(np.float32)
    tiles = gray[:h, :w].astype(np.float32).reshape(h // block, block, w // block, block)
    return tiles.mean(axis=(1, 3))


def _pgm(gray: np.ndarray) -> bytes:
    """A binary PGM of a grey image: no compression to pay for, and leptonica reads it."""
    h, w = gray.shape
    if h == 0 or w == 0:
        raise ValueError(f"empty frame ({w}x{h})")
    return b"P5 %d %d 255\n" % (w, h) + np.ascontiguousarray(gray, dtype=np.uint8).tobytes()


def _is_cjk(ch: str) -> bool:
    return "\u3040" <= ch <= "\u30ff" or "\u3400" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af"


def tidy(text: str) -> str:
    """A cue's text: lines joined, whitespace collapsed, and the spaces Tesseract puts
    between Chinese/Japanese words removed (those scripts write none)."""
    return _CJK_GAP.sub("", " ".join(text.split()))


def _useful(word: str, confidence: float) -> bool:
    """A word that makes its line worth keeping: four letters, or a confident short word
    (three letters, or two CJK characters). Texture is read as short junk words, and a line
    of digits alone (a timecode, a frame counter) says nothing a text query could ask for."""
    n = sum(ch.isalpha() for ch in word)
    short = n >= 3 or sum(_is_cjk(ch) for ch in word) >= 2
    return n >= 4 or (short and confidence >= SHORT_WORD_CONFIDENCE)


def parse_tsv(tsv: str, min_confidence: float) -> tuple[str, float]:
    """Tesseract TSV -> (text, mean confidence): confident words, lines of junk dropped.

    A line is kept when at least one of its confident words is _useful(); words without
    any letter or digit are dropped from it.
    """
    lines: dict[tuple[str, ...], list[tuple[str, float]]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        word = cols[11].strip()
        try:
            conf = float(cols[10])
        except ValueError:
            continue
        if word and conf >= min_confidence and any(ch.isalnum() for ch in word):
            lines.setdefault(tuple(cols[1:5]), []).append((word, conf))
    kept = [words for words in lines.values() if any(_useful(w, c) for w, c in words)]
    if not kept:
        return "", 0.0
    confs = [c for words in kept for _, c in words]
    return "\n".join(" ".join(w for w, _ in words) for words in kept), float(np.mean(confs))


def split_pages(tsv: str) -> list[str]:
    """A multi-image Tesseract TSV split into one TSV per image (page_num, column 2)."""
    rows = tsv.splitlines()
    if not rows:
        return []
    pages: dict[str, list[str]] = {}
    for row in rows[1:]:
        cols = row.split("\t", 2)
        if len(cols) >= 2 and cols[1].isdigit():
            pages.setdefault(cols[1], [rows[0]]).append(row)
    return ["\n".join(pages[k]) for k in sorted(pages, key=int)]


def merge_cues(
    observations: Iterable[tuple[float, str, float]], interval: float, merge_ratio: float = 0.8,
    duration: float | None = None,
) -> list[TimedText]:
    """(time, text, confidence) per frame -> cues: consecutive frames whose normalised texts
    match (difflib ratio >= merge_ratio) become one cue, first frame -> last + interval.

    A frame without text ends the cue; the cue keeps its most confident frame's text.
    """
    cues: list[TimedText] = []
    run: list[Any] | None = None  # [start, last, key, text, confidence]

    def close(r: list[Any]) -> None:
        end = r[1] + interval
        if duration:
            end = max(min(end, duration), r[1])
        cues.append(TimedText(round(r[0], 3), round(end, 3), tidy(r[3])))

    for t, text, conf in observations:
        key = normalise(text)
        if run is not None and key and difflib.SequenceMatcher(None, run[2], key).ratio() >= merge_ratio:
            run[1] = t
            if conf > run[4]:
                run[2:] = [key, text, conf]
            continue
        if run is not None:
            close(run)
        run = [t, t, key, text, conf] if key else None
    if run is not None:
        close(run)
    return cues


def _run_tool(args: list[str], timeout: float) -> str:
    """Run tesseract single-threaded; its stdout as text, TesseractRunError on failure."""
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run(args, capture_output=True, timeout=timeout, env=env, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise TesseractRunError(f"{args[0]} exited with code {proc.returncode}: {tail[0]}")
    return proc.stdout.decode("utf-8", "replace")


class TesseractRunError(ExtractorError):
    """One Tesseract call failed (a bad image, a crash); the frame is skipped."""


@register_source
class ScreenTextSource(TextSource):
    """Text shown on screen, read by Tesseract from sampled frames, as timed cues."""

    name = "screen"

    def __init__(self, config: ScreenTextConfig):
        self.config = cfg = config
        self.cmd = cfg.tesseract_cmd
        version_text = self._probe_tool(["--version"])
        self.version = (version_text.splitlines() or ["tesseract unknown"])[0].strip()
        listing = self._probe_tool(["--list-langs"])
        installed = [ln.strip() for ln in listing.splitlines()[1:] if ln.strip()]
        if cfg.languages is None:
            langs: tuple[str, ...] = ("eng",) + (("chi_sim",) if "chi_sim" in installed else ())
        else:
            langs = cfg.languages
        missing = [lang for lang in langs if lang not in installed]
        if missing:
            raise ExtractorError(
                f"screen text source: Tesseract language(s) {missing} not installed "
                f"(installed: {installed}); install them with "
                f"`apt-get install {' '.join(_debian_package(m) for m in missing)}` "
                "or set the `languages` option"
            )
        self.languages = langs
        self.lang = "+".join(langs)
        self.fingerprint = fingerprint(
            self.name,
            {"engine": "tesseract", "version": self.version, "languages": list(langs)},
            self._traineddata_digest(listing, langs),
            {"version": PREPROCESS_VERSION, **asdict(cfg), "languages": list(langs), "tesseract_cmd": None,
             "timeout_s": None, "batch_frames": None},
        )

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], runtime: RuntimeOptions | None = None
    ) -> ScreenTextSource:
        """Build the source from its options in a set file (unknown keys are a ConfigError)."""
        return cls(parse_config(ScreenTextConfig, config, "text source 'screen'"))

    def _probe_tool(self, args: list[str]) -> str:
        """Output of `tesseract <args>` at construction; a missing binary is one clear error."""
        try:
            proc = subprocess.run([self.cmd, *args], capture_output=True, timeout=30, check=False,
                                  env=dict(os.environ, OMP_THREAD_LIMIT="1"))
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ExtractorError(
                f"screen text source: cannot run the tesseract binary {self.cmd!r} ({e}); "
                f"install it with `{INSTALL_HINT}` or set the `tesseract_cmd` option"
            ) from e
        out, err = (proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))
        if proc.returncode != 0:
            raise ExtractorError(
                f"screen text source: {self.cmd!r} {' '.join(args)} failed with code {proc.returncode} "
                f"({(err or out).strip()[-200:]}); install Tesseract with `{INSTALL_HINT}`"
            )
        return out if out.strip() else err  # Tesseract 4.0 printed --version on stderr

    @staticmethod
    def _traineddata_digest(listing: str, langs: tuple[str, ...]) -> str:
        """Digest of the language models used (an updated language package re-reads)."""
        h = hashlib.sha256()
        m = _TESSDATA_DIR.search(listing.splitlines()[0] if listing else "")
        for lang in langs:
            path = Path(m.group(1)) / f"{lang}.traineddata" if m else None
            h.update(lang.encode())
            if path is not None and path.is_file():
                h.update(file_digest(path).encode())
        return h.hexdigest()

    def applies_to(self, item: MediaItem) -> bool:
        """Files with a real video stream (cover art in an audio file does not count)."""
        return item.info.has_video

    def policy(self, item: MediaItem) -> FramePolicy:
        """Sampling for this file: text-legible size, aspect ratio kept, low rate."""
        cfg = self.config
        width, height = item.info.video[0].display_size if item.info.video else (0, 0)
        if width <= 0 or height <= 0:
            return FramePolicy(size=(cfg.max_width, cfg.max_width * 9 // 16), resize="fit",
                               fps=cfg.fps, max_frames=cfg.max_frames, chunk_frames=cfg.batch_frames)
        scale = cfg.upscale if width < cfg.upscale_below else 1.0
        out_w = min(cfg.max_width, round(width * scale))
        out_h = max(1, round(height * out_w / width))
        return FramePolicy(size=(out_w, out_h), resize="stretch", fps=cfg.fps,
                           max_frames=cfg.max_frames, chunk_frames=cfg.batch_frames)

    def ocr_frame(self, frame: np.ndarray) -> tuple[str, float]:
        """(text, mean confidence) Tesseract reads in one RGB or grey frame; raises on a bad one."""
        result = self.read_images([_pgm(to_gray(frame))])[0]
        if result is None:
            raise TesseractRunError("Tesseract could not read the frame")
        return result

    def read_images(self, images: Sequence[bytes]) -> list[tuple[str, float] | None]:
        """(text, mean confidence) per encoded image (PGM/PNG bytes), None where one failed.

        The images go to one Tesseract process (its start costs ~0.1 s per language);
        when that call fails, each image is read alone, so one bad image loses only itself.
        """
        if not images:
            return []
        try:
            return self._tesseract(images)
        except (TesseractRunError, subprocess.TimeoutExpired, OSError) as e:
            if len(images) == 1:
                log.warning("on-screen text: an image was skipped: %s", e)
                return [None]
            log.info("on-screen text: a batch of %d images failed (%s); reading them one by one",
                     len(images), e)
        out: list[tuple[str, float] | None] = []
        for image in images:
            out.extend(self.read_images([image]))
        return out

    def _tesseract(self, images: Sequence[bytes]) -> list[tuple[str, float]]:
        """One Tesseract run over the images (a list file of temporary PGMs), in order."""
        cfg = self.config
        with tempfile.TemporaryDirectory(prefix="mmrec-ocr-") as tmp:
            names = []
            for i, image in enumerate(images):
                name = os.path.join(tmp, f"{i:04d}.pgm")
                with open(name, "wb") as f:
                    f.write(image)
                names.append(name)
            listing = os.path.join(tmp, "frames.txt")
            with open(listing, "w", encoding="utf-8") as f:
                f.write("\n".join(names) + "\n")
            args = [self.cmd, listing, "stdout", "-l", self.lang, "--psm", str(cfg.psm), "tsv"]
            pages = split_pages(_run_tool(args, cfg.timeout_s * len(images)))
        if len(pages) != len(images):
            raise TesseractRunError(f"Tesseract returned {len(pages)} pages for {len(images)} images")
        return [parse_tsv(page, cfg.min_confidence) for page in pages]

    def observations(self, frames: Iterable[tuple[float, np.ndarray]], where: str = "<frames>"
                     ) -> Iterator[tuple[float, str, float]]:
        """(time, text, confidence) per readable frame, in order, OCR batched.

        A frame whose 16x16-block grey means all lie within same_frame_diff of the last
        frame sent to OCR reuses that frame's text. A bad frame (wrong shape, empty, a
        Tesseract failure on it) is logged and skipped; the rest are still read.
        """
        pending: list[tuple[float, int]] = []  # (time, index in images of the text it shows)
        images: list[bytes] = []
        ref_thumb: np.ndarray | None = None

        def flush() -> Iterator[tuple[float, str, float]]:
            results = self.read_images(images)
            for t, idx in pending:
                result = results[idx]
                if result is None:
                    log.warning("%s: on-screen text of the frame at %.2fs skipped", where, t)
                    continue
                yield t, result[0], result[1]
            pending.clear()
            images.clear()

        for t, frame in frames:
            try:
                gray = to_gray(frame)
                thumb = thumbnail(gray)
                same = (ref_thumb is not None and ref_thumb.shape == thumb.shape
                        and float(np.abs(thumb - ref_thumb).max()) < self.config.same_frame_diff)
                image = b"" if same else _pgm(gray)
            except ValueError as e:
                log.warning("%s: on-screen text of the frame at %.2fs skipped: %s", where, t, e)
                continue
            if not same:
                # A batch is read when full, just before a frame that needs its own OCR:
                # the frames that reuse a text always point into the current batch.
                if len(images) >= self.config.batch_frames:
                    yield from flush()
                images.append(image)
                ref_thumb = thumb
            pending.append((t, len(images) - 1))
        yield from flush()

    def cues_from_frames(
        self, frames: Iterable[tuple[float, np.ndarray]], interval: float, where: str = "<frames>",
        duration: float | None = None,
    ) -> list[TimedText]:
        """Timed cues from (time, RGB frame) pairs sampled every `interval` seconds: see
        observations() (a bad frame is skipped) and merge_cues()."""
        return merge_cues(self.observations(frames, where), interval, self.config.merge_ratio, duration)

    def _frames(self, item: MediaItem, policy: FramePolicy) -> Iterator[tuple[float, np.ndarray]]:
        """(time, frame) pairs streamed from ffmpeg; a decode that fails part-way keeps what
        came before it (logged), a decode that yields nothing raises the media error."""
        count = 0
        chunks = iter_frames(item.path, policy, item.info)
        with contextlib.closing(chunks):
            try:
                for chunk in chunks:
                    for t, frame in zip(chunk.times, chunk.frames, strict=True):
                        count += 1
                        yield float(t), frame
            except DecodeError as e:
                if count == 0:
                    raise
                log.warning("%s: on-screen text read up to the decode failure only: %s", item.path, e)

    def read(self, item: MediaItem) -> Transcript:
        """The file's on-screen text as timed cues (thread-safe: no state is shared)."""
        if not self.applies_to(item):
            return Transcript(self.name)
        policy = self.policy(item)
        duration = item.info.video[0].duration or item.info.duration
        interval = 1.0 / policy.effective_fps(duration)
        cues = self.cues_from_frames(self._frames(item, policy), interval, item.path, duration)
        return Transcript(self.name, tuple(cues), self.lang if cues else None)
