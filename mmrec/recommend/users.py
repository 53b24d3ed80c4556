"""User vectors in the fused item layout: attention pooling over a user's history.

    a_t = softmax_t(cos(v_t, h) / tau)          h = mean of the last few positive items
    w_t = a_t * 0.5 ** (age_t / half_life) * e_t  e_t = event weight (< 0 for skip, dislike),
                                                  scaled by the comment's sentiment
    u   = blocks_unit( sum_t w_t v_t / sum_t a_t |e_t|  [+ comment text] [+ prior] )

Every block of u is re-normalised to unit length (times an optional modality weight),
so `u · item = sum_m w_m cos(u_m, v_m)`: users score items with the same dot product
as a search query, through the same kernels. NumPy only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmrec.errors import ConfigError, MmrecError
from mmrec.fusion import FusionLayout
from mmrec.recommend.interactions import EVENTS
from mmrec.recommend.sentiment import NEUTRAL_BAND

SECONDS_PER_DAY = 86_400.0

# Documented defaults: like > share > comment > complete view > partial view > skip > dislike.
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "like": 1.0,      # explicit approval
    "share": 0.8,     # strong, though people also share what they argue with
    "comment": 0.7,   # engaged enough to write; the text itself also joins the text block
    "view": 0.6,      # a complete view; a partial view is scaled by the fraction watched
    "skip": -0.2,     # weak negative: maybe just "not now"
    "dislike": -1.0,  # explicit disapproval: pulls the user away from the item
}
# Events whose weight is scaled by `value` (the fraction watched) below `complete_view`.
FRACTION_SCALED = frozenset({"view"})


class UserVectorError(MmrecError, ValueError):
    """No user vector can be built: empty history, or a history with no net direction."""


@dataclass(frozen=True)
class UserVectorConfig:
    """How interactions become a user vector.

    Attributes:
        tau: softmax temperature on cosine similarity to the recent context; 0.5 makes an
            item 0.5 more cosine-similar to the context weigh e (~2.7) times more.
        context_size: how many of the latest positive items form the context h.
        half_life_days: recency half-life; None disables decay. 30 days: a month-old
            interest counts half as much as today's.
        event_weights: per-event weight; a partial dict overrides the defaults above.
        complete_view: a view with value >= this counts fully; below, weight * value.
        comment_text_weight: scale of a row's comment text vector relative to its item.
        prior_weight: scale of an interests (cold-start) prior added to the history.
        modality_weights: per-block scale of the final vector (None: 1 for every block).
        sentiment: let a comment's sentiment s scale its event's weight (see
            `sentiment_weights`); False: every event weighs as if it had no comment.
        sentiment_gain: alpha in |e| * (1 + alpha |s|): 1.0 makes a glowing comment
            (s ~ 0.9) count nearly twice its event: a comment then outweighs a like.
        sentiment_neutral: |s| below this is a neutral comment: the plain event weight.
    """

    tau: float = 0.5
    context_size: int = 5
    half_life_days: float | None = 30.0
    event_weights: Mapping[str, float] = field(default_factory=dict)
    complete_view: float = 0.9
    comment_text_weight: float = 0.5
    prior_weight: float = 0.5
    modality_weights: Mapping[str, float] | None = None
    sentiment: bool = True
    sentiment_gain: float = 1.0
    sentiment_neutral: float = NEUTRAL_BAND

    def __post_init__(self) -> None:
        unknown = sorted(set(self.event_weights) - set(EVENTS))
        if unknown:
            raise ConfigError(f"unknown event weight(s) {', '.join(unknown)}: events are "
                              f"{', '.join(EVENTS)}")
        object.__setattr__(self, "event_weights", {**DEFAULT_EVENT_WEIGHTS, **self.event_weights})
        checks = {
            "tau": self.tau > 0,
            "context_size": self.context_size >= 1,
            "half_life_days": self.half_life_days is None or self.half_life_days > 0,
            "complete_view": 0 < self.complete_view <= 1,
            "sentiment_gain": self.sentiment_gain >= 0,
            "sentiment_neutral": 0 <= self.sentiment_neutral < 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"bad user-vector setting {name}={getattr(self, name)!r}: tau and "
                                  "half_life_days must be > 0, context_size >= 1, complete_view in (0, 1], "
                                  "sentiment_gain >= 0, sentiment_neutral in [0, 1)")


def _floats(xs: Sequence[float | None] | np.ndarray) -> np.ndarray:
    return np.array([np.nan if x is None else x for x in xs], dtype=np.float64)


def event_weights(events: Sequence[str], values: Sequence[float | None] | np.ndarray,
                  config: UserVectorConfig,
                  sentiments: Sequence[float | None] | np.ndarray | None = None) -> np.ndarray:
    """Signed weight of each event; views below `complete_view` are scaled by their fraction,
    and events with a scored comment by its sentiment (`sentiment_weights`)."""
    vals = _floats(values)
    try:
        base = np.array([config.event_weights[e] for e in events], dtype=np.float64)
    except KeyError as e:
        raise ConfigError(f"unknown event {e.args[0]!r}: events are {', '.join(EVENTS)}") from e
    scaled = np.array([e in FRACTION_SCALED for e in events], dtype=bool)
    partial = scaled & ~np.isnan(vals) & (vals < config.complete_view)
    weights = np.where(partial, base * np.nan_to_num(vals), base)
    if sentiments is None or not len(sentiments):
        return weights
    if len(sentiments) != len(events):
        raise ConfigError(f"{len(sentiments)} sentiments for {len(events)} events")
    return sentiment_weights(weights, sentiments, config)


def sentiment_weights(weights: np.ndarray, sentiments: Sequence[float | None] | np.ndarray,
                      config: UserVectorConfig) -> np.ndarray:
    """Event weights e scaled by their comments' sentiment s (None/NaN: no comment).

        |s| < neutral          e                       a neutral comment: the plain event
        s >= neutral, e > 0    e * (1 + gain * s)      praise strengthens a positive event
        s <= -neutral          -|e| * (1 + gain * |s|) a complaint makes it a negative signal
                                                       ("boring, waste of time" pushes away)

    Praise on a skip or dislike leaves it as it is (sarcasm, or a remark on something
    else). With `config.sentiment` off the weights come back unchanged.
    """
    w = np.asarray(weights, dtype=np.float64)
    if not config.sentiment:
        return w
    s = np.nan_to_num(_floats(sentiments), nan=0.0)
    s = np.where(np.abs(s) >= config.sentiment_neutral, s, 0.0)
    boost = 1.0 + config.sentiment_gain * np.abs(s)
    out = np.where((s > 0) & (w > 0), w * boost, w)
    return np.where(s < 0, -np.abs(w) * boost, out)


def recency_decay(timestamps: np.ndarray | Sequence[float], now: float,
                  half_life_days: float | None) -> np.ndarray:
    """0.5 ** (age / half-life), age in days clipped at 0 (future events count as now)."""
    ts = np.asarray(timestamps, dtype=np.float64)
    if half_life_days is None:
        return np.ones_like(ts)
    age = np.maximum(now - ts, 0.0) / SECONDS_PER_DAY
    return np.power(0.5, age / half_life_days)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """x's rows scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def attention(history: np.ndarray, weights: np.ndarray, timestamps: np.ndarray,
              tau: float, context_size: int) -> np.ndarray:
    """softmax(cos(v_t, h) / tau) with h the mean of the latest `context_size` positive rows.

    When no row is positive the latest rows of any kind form the context.
    """
    order = np.argsort(np.asarray(timestamps, dtype=np.float64), kind="stable")
    positive = order[weights[order] > 0]
    context = (positive if positive.size else order)[-context_size:]
    h = unit_rows(history[context].mean(axis=0))
    z = (unit_rows(history) @ h) / tau
    a = np.exp(z - z.max())
    return a / a.sum()


def normalise_blocks(vec: np.ndarray, layout: FusionLayout,
                     weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Each block scaled to unit length (times its weight); zero blocks stay zero."""
    out = np.zeros(layout.dim, dtype=np.float32)
    for b in layout.blocks:
        block = np.asarray(vec[b.offset: b.offset + b.dim], dtype=np.float64)
        n = float(np.linalg.norm(block))
        w = 1.0 if weights is None else float(weights.get(b.modality, 0.0))
        if n > 0 and w != 0:
            out[b.offset: b.offset + b.dim] = w * block / n
    return out


def user_vector(
    history: np.ndarray,
    events: Sequence[str],
    values: Sequence[float | None] | np.ndarray,
    timestamps: Sequence[float] | np.ndarray,
    layout: FusionLayout,
    now: float,
    comment_vectors: Mapping[str, np.ndarray] | None = None,
    config: UserVectorConfig | None = None,
    prior: np.ndarray | None = None,
    sentiments: Sequence[float | None] | np.ndarray | None = None,
) -> np.ndarray:
    """A user's fused-layout vector from the items they interacted with.

    Args:
        history: [T, D] fused vectors of the interacted items, one row per interaction.
        events, values, timestamps: per row, the event name, watched fraction (None/NaN
            when missing) and epoch seconds. Rows need not be in time order.
        layout: the catalog's fusion layout (D = layout.dim).
        now: epoch seconds that ages are measured from.
        comment_vectors: optional {modality: [T, d_m]} text embeddings of each row's
            comment (zero rows where there is none); each rides with its row's weight
            times `comment_text_weight` into that modality's block.
        config: weights and temperature (UserVectorConfig() when None).
        prior: optional fused interests vector (cold_start_vector) added with
            `prior_weight`; the history part is a weighted mean, so the prior keeps its
            share while old history decays.
        sentiments: optional per-row comment sentiment in [-1, 1] (None/NaN: no scored
            comment); scales that row's event weight (`sentiment_weights`).

    Returns:
        float32 [D] with unit (weighted) blocks; a block no row touches stays zero. A
        history of only negative events gives a vector pointing away from those items.

    Raises:
        UserVectorError: empty history, or weights that cancel to a zero vector.
        ConfigError: mismatched lengths, wrong dimension or an unknown event.
    """
    cfg = config or UserVectorConfig()
    v = np.asarray(history, dtype=np.float64).reshape(-1, layout.dim) if np.size(history) else None
    if v is None or v.shape[0] == 0:
        raise UserVectorError("empty history: no interactions to build a user vector from; "
                              "use cold_start_vector (--interests) instead")
    t = v.shape[0]
    ts = np.asarray(timestamps, dtype=np.float64)
    if not (len(events) == len(values) == ts.shape[0] == t):
        raise ConfigError(f"history has {t} rows but {len(events)} events, {len(values)} values "
                          f"and {ts.shape[0]} timestamps")
    e = event_weights(events, values, cfg, sentiments)
    a = attention(v, e, ts, cfg.tau, cfg.context_size)
    w = a * recency_decay(ts, now, cfg.half_life_days) * e
    norm = float(np.sum(a * np.abs(e)))
    acc = np.zeros(layout.dim, dtype=np.float64)
    if norm > 0:
        acc += (w @ v) / norm
        for modality, c in (comment_vectors or {}).items():
            b = layout.block(modality)
            c = np.asarray(c, dtype=np.float64).reshape(t, -1)
            if c.shape[1] != b.dim:
                raise ConfigError(f"{modality} comment vectors have dim {c.shape[1]}, layout expects {b.dim}")
            acc[b.offset: b.offset + b.dim] += cfg.comment_text_weight * (w @ unit_rows(c)) / norm
    if prior is not None:
        acc += cfg.prior_weight * np.asarray(prior, dtype=np.float64).reshape(layout.dim)
    out = normalise_blocks(acc, layout, cfg.modality_weights)
    if not out.any():
        raise UserVectorError("the history has no net direction (weights cancel out or all are zero): "
                              "add interactions or use cold_start_vector (--interests)")
    return out


def split_interests(text: str) -> list[str]:
    """'jazz, travel vlogs' -> ['jazz', 'travel vlogs'] (commas, semicolons, newlines)."""
    parts = [p.strip() for p in re.split(r"[,;\n]", text)]
    parts = [p for p in parts if p]
    if not parts:
        raise ConfigError(f"no interests in {text!r}: give e.g. --interests \"jazz, travel vlogs\"")
    return parts


def cold_start_vector(text_vectors: Mapping[str, np.ndarray], layout: FusionLayout,
                      weights: Mapping[str, float] | None = None) -> np.ndarray:
    """A user vector from interests text embedded by every text tower (CLIP, CLAP, BERT).

    Args:
        text_vectors: {modality: [d] or [n, d]} one text tower's embedding(s) of the
            interests; n rows (one per interest) are averaged as unit vectors, so each
            interest counts equally.
        layout: the catalog's fusion layout.
        weights: optional per-modality weights of the result (None: 1 each).

    Returns:
        float32 [D] with unit blocks for the modalities given, zero elsewhere.

    Raises:
        UserVectorError: no usable text vector was given.
    """
    acc = np.zeros(layout.dim, dtype=np.float64)
    for modality, vecs in text_vectors.items():
        b = layout.block(modality)
        rows = np.asarray(vecs, dtype=np.float64).reshape(-1, b.dim) if np.size(vecs) else None
        if rows is not None:
            acc[b.offset: b.offset + b.dim] = unit_rows(rows).mean(axis=0)
    out = normalise_blocks(acc, layout, weights)
    if not out.any():
        raise UserVectorError("no text vectors for the interests: the catalog's extractors need a "
                              "text tower (CLIP, CLAP or BERT text)")
    return out


def embed_comments(texts: Sequence[str | None], embed: Callable[[list[str]], Mapping[str, np.ndarray]],
                   layout: FusionLayout) -> dict[str, np.ndarray]:
    """Comment vectors aligned with history rows ({modality: [T, d]}, zero rows without text).

    `embed(list_of_texts) -> {modality: [n, d]}` is e.g. the text extractor's embed_text.
    """
    rows = [i for i, t in enumerate(texts) if t]
    if not rows:
        return {}
    out: dict[str, np.ndarray] = {}
    for modality, vecs in embed([str(texts[i]) for i in rows]).items():
        b = layout.block(modality)
        full = np.zeros((len(texts), b.dim), dtype=np.float32)
        full[rows] = np.asarray(vecs, dtype=np.float32).reshape(len(rows), b.dim)
        out[modality] = full
    return out


# -- explanation helpers --------------------------------------------------------------

def contribution_shares(user: np.ndarray, item: np.ndarray,
                        layout: FusionLayout) -> tuple[dict[str, float], dict[str, float]]:
    """(u_m · v_m per modality, each one's share of the positive contributions, summing to 1).

    Negative contributions get share 0; all shares are 0 when nothing contributes positively.
    """
    return contribution_shares_many(user, np.atleast_2d(item), layout)[0]


def contribution_shares_many(user: np.ndarray, items: np.ndarray,
                             layout: FusionLayout) -> list[tuple[dict[str, float], dict[str, float]]]:
    """contribution_shares for each row of `items` [k, D], from one product per modality
    (a recommendation list's bars cost one call, not k)."""
    rows = np.atleast_2d(np.asarray(items, np.float32))
    scores = layout.modality_scores(np.asarray(user, np.float32), rows)
    names = list(scores)
    contrib = np.stack([scores[m] for m in names], axis=1).astype(np.float64)  # [k, M]
    pos = np.maximum(contrib, 0.0)
    total = pos.sum(axis=1, keepdims=True)
    shares = np.divide(pos, total, out=np.zeros_like(pos), where=total > 0)
    return [(dict(zip(names, c.tolist(), strict=True)), dict(zip(names, s.tolist(), strict=True)))
            for c, s in zip(contrib, shares, strict=True)]


def block_similarity(a: np.ndarray, b: np.ndarray, layout: FusionLayout) -> dict[str, float]:
    """Cosine similarity per modality between two fused vectors; modalities missing in either are left out."""
    out: dict[str, float] = {}
    for m, x in layout.split(np.asarray(a, np.float64)).items():
        y = layout.split(np.asarray(b, np.float64))[m]
        nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
        if nx > 0 and ny > 0:
            out[m] = float(x @ y) / (nx * ny)
    return out


def most_similar(history: np.ndarray, item: np.ndarray, mask: np.ndarray | None = None,
                 unit: bool = False) -> int | None:
    """Row of `history` (among rows where mask is True) most cosine-similar to `item`, or None
    (unit: history's rows are unit_rows already, made once for many items)."""
    h = np.asarray(history, dtype=np.float64)
    if h.size == 0:
        return None
    rows = h.reshape(h.shape[0], -1)
    sims = (rows if unit else unit_rows(rows)) @ unit_rows(np.asarray(item, np.float64).reshape(-1))
    if mask is not None:
        sims = np.where(np.asarray(mask, dtype=bool), sims, -np.inf)
    best = int(np.argmax(sims))
    return None if not np.isfinite(sims[best]) else best
