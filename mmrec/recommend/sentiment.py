"""Comment sentiment in [-1, 1], by language: VADER for English, SnowNLP for Chinese.

Scorers register per language (`@register("en")` on a factory), and each is built on
first use: VADER takes ~30 ms to load, SnowNLP ~2.7 s (it loads its models at import),
so neither is loaded by `import mmrec` or by a command that scores no comment. The
language of a comment comes from the script most of its letters are in
(`detect_language`); `SentimentAnalyzer(scorers=..., detect=...)` replaces either.
Thread-safe: each scorer is built once under a lock, and SnowNLP calls are serialised.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from mmrec.errors import ConfigError, MmrecError
from mmrec.recommend.interactions import Interaction

log = logging.getLogger(__name__)

Scorer = Callable[[str], float]  # text -> sentiment in [-1, 1]
ScorerFactory = Callable[[], Scorer]  # builds a scorer (loads its model) on first use

NEUTRAL_BAND = 0.2  # |s| below this is a plain comment: no praise, no complaint
LOVED = 0.5  # a comment at or above this makes an explanation say "you loved X"

SCORERS: dict[str, ScorerFactory] = {}


class SentimentUnavailableError(MmrecError):
    """A sentiment scorer's package is missing; the message names the install command."""


def register(language: str) -> Callable[[ScorerFactory], ScorerFactory]:
    """Register a scorer factory for a language code ("en", "zh"); a duplicate is refused."""
    def add(factory: ScorerFactory) -> ScorerFactory:
        if language in SCORERS:
            old = SCORERS[language]
            raise ConfigError(f"a sentiment scorer for {language!r} is already registered "
                              f"({old.__module__}.{old.__qualname__}): pass scorers= to "
                              "SentimentAnalyzer to use another one")
        SCORERS[language] = factory
        return factory
    return add


@register("en")
def vader() -> Scorer:
    """VADER's compound score (already in [-1, 1]); it also reads emoticons and caps."""
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise SentimentUnavailableError("English comment sentiment needs vaderSentiment: "
                                        "pip install vaderSentiment") from e
    analyzer = SentimentIntensityAnalyzer()
    return lambda text: float(analyzer.polarity_scores(text)["compound"])


@register("zh")
def snownlp() -> Scorer:
    """SnowNLP's positive probability p mapped to 2p - 1 (what `SnowNLP(text).sentiments` gives)."""
    try:
        from snownlp import sentiment  # loads the segmenter, tagger and classifier (~2.7 s)
    except ImportError as e:
        raise SentimentUnavailableError("Chinese comment sentiment needs snownlp: pip install snownlp") from e
    lock = threading.Lock()  # its segmenter and classifier were not written for threads

    def score(text: str) -> float:
        with lock:
            p = float(sentiment.classify(text))
        return 2.0 * p - 1.0

    return score


def _script(c: str) -> str:
    """'han', 'kana', 'hangul' or 'other' for one letter."""
    o = ord(c)
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF:
        return "han"
    if 0x3040 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    return "other"


def detect_language(text: str) -> str:
    """'zh' when most letters are Han characters (and no kana), 'ja' with kana, 'ko' for
    mostly Hangul, else 'en' (also for text with no letters: VADER reads ':)')."""
    counts = {"han": 0, "kana": 0, "hangul": 0, "other": 0}
    for c in text:
        if c.isalpha():
            counts[_script(c)] += 1
    letters = sum(counts.values())
    if not letters:
        return "en"
    cjk = counts["han"] + counts["kana"]
    if cjk * 2 >= letters:
        return "ja" if counts["kana"] * 10 >= cjk else "zh"
    return "ko" if counts["hangul"] * 2 >= letters else "en"


class SentimentAnalyzer:
    """Scores comments with the scorer of their language, building each scorer once.

    Args:
        scorers: language -> factory; None uses the registry (`SCORERS`), read live, so
            scorers registered later are found too.
        detect: text -> language code (default `detect_language`).
    """

    def __init__(self, scorers: Mapping[str, ScorerFactory] | None = None,
                 detect: Callable[[str], str | None] = detect_language) -> None:
        self._factories = SCORERS if scorers is None else dict(scorers)
        self._detect = detect
        self._built: dict[str, Scorer] = {}
        self._lock = threading.Lock()

    @property
    def languages(self) -> list[str]:
        return sorted(self._factories)

    def scorer(self, language: str) -> Scorer | None:
        """The language's scorer, built on first use; None when none is registered."""
        built = self._built.get(language)
        if built is not None or language not in self._factories:
            return built
        with self._lock:
            if language not in self._built:
                self._built[language] = self._factories[language]()
            return self._built[language]

    def score(self, text: str | None, language: str | None = None) -> float | None:
        """Sentiment of one comment in [-1, 1]; None for empty text or a language with no scorer.

        Raises:
            ConfigError: `language` was given and has no scorer.
        """
        text = (text or "").strip()
        if not text:
            return None
        if language is not None and language not in self._factories:
            raise ConfigError(f"no sentiment scorer for language {language!r} "
                              f"(have {', '.join(self.languages)}): register one with "
                              "@mmrec.recommend.sentiment.register")
        lang = language or self._detect(text)
        scorer = self.scorer(lang) if lang else None
        if scorer is None:
            log.debug("no sentiment scorer for language %r; comment left unscored", lang)
            return None
        s = float(scorer(text))
        return min(1.0, max(-1.0, s)) if math.isfinite(s) else None

    def score_many(self, texts: Iterable[str | None]) -> list[float | None]:
        """`score` of each text; a text repeated in the batch is scored once."""
        done: dict[str, float | None] = {}
        out = []
        for t in texts:
            key = (t or "").strip()
            if key not in done:
                done[key] = self.score(key)
            out.append(done[key])
        return out


DEFAULT_ANALYZER = SentimentAnalyzer()  # builds nothing until a comment is scored


def score_text(text: str | None, language: str | None = None) -> float | None:
    """Sentiment of one comment in [-1, 1] with the registered scorers (None: no text)."""
    return DEFAULT_ANALYZER.score(text, language)


def with_sentiment(rows: Sequence[Interaction],
                   analyzer: SentimentAnalyzer | None = None) -> list[Interaction]:
    """The rows with `sentiment` scored from their comment where it is missing (others as they are)."""
    todo = [i for i, r in enumerate(rows) if r.sentiment is None and r.text and r.text.strip()]
    out = list(rows)
    if todo:
        scores = (analyzer or DEFAULT_ANALYZER).score_many(rows[i].text for i in todo)
        for i, s in zip(todo, scores, strict=True):
            if s is not None:
                out[i] = replace(rows[i], sentiment=s)
    return out
