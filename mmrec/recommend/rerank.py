"""Rerank a user's candidates: popularity and freshness boosts, then MMR diversity.

    final_i = relevance_i + popularity_weight * pop_i + freshness_weight * fresh_i
    pick    = argmax_i  lambda * norm(final_i) - (1 - lambda) * max_{j chosen} cos(v_i, v_j)

with lambda = 1 - diversity and norm() a min-max scaling over the candidates (so the
knob means the same whatever the score scale). diversity = 0 is the plain score order;
diversity = 1 picks the best item first, then each time the one least like those chosen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmrec.errors import ConfigError

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class RerankConfig:
    """Rerank weights.

    Attributes:
        popularity_weight: bonus for the most popular item (popularity_scores() is in
            [0, 1], log-scaled); small by default so popularity only breaks near-ties
            rather than building a bubble of hits.
        freshness_weight: bonus for an item ingested right now, halving every
            `freshness_half_life_days`, so new items surface without drowning relevance.
        freshness_half_life_days: half-life of the freshness bonus.
        diversity: 0..1, the MMR trade-off (0 = relevance only).
    """

    popularity_weight: float = 0.05
    freshness_weight: float = 0.05
    freshness_half_life_days: float = 14.0
    diversity: float = 0.2

    def __post_init__(self) -> None:
        if not 0.0 <= self.diversity <= 1.0:
            raise ConfigError(f"diversity must be in [0, 1]; got {self.diversity}")
        if not self.freshness_half_life_days > 0:
            raise ConfigError(f"freshness_half_life_days must be > 0; got {self.freshness_half_life_days}")
        for name in ("popularity_weight", "freshness_weight"):
            if not np.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be a finite number; got {getattr(self, name)}")

    def is_neutral(self, has_popularity: bool = True, has_freshness: bool = True) -> bool:
        """True when reranking cannot change the kernel's order (no boosts, no diversity)."""
        return (self.diversity == 0.0
                and (self.popularity_weight == 0.0 or not has_popularity)
                and (self.freshness_weight == 0.0 or not has_freshness))


@dataclass(frozen=True)
class RerankResult:
    """Chosen candidates: `order` are positions into the candidate arrays, best first;
    `scores` are their boosted scores (relevance + popularity + freshness)."""

    order: np.ndarray
    scores: np.ndarray


def popularity_scores(counts: np.ndarray, top: float | None = None) -> np.ndarray:
    """log1p(count) / log1p(max count): 1 for the most popular item, 0 for unseen ones.

    top: the largest count in the whole catalog, when `counts` covers only part of it.
    """
    c = np.maximum(np.asarray(counts, dtype=np.float64), 0.0)
    if top is None:
        top = float(c.max()) if c.size else 0.0
    return (np.log1p(c) / np.log1p(top) if top > 0 else np.zeros_like(c)).astype(np.float32)


def freshness_scores(ingest_times: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """0.5 ** (age / half-life) in (0, 1]; future times count as now, NaN (unknown) as 0."""
    t = np.asarray(ingest_times, dtype=np.float64)
    age = np.maximum(now - t, 0.0) / SECONDS_PER_DAY
    return np.nan_to_num(np.power(0.5, age / half_life_days), nan=0.0).astype(np.float32)


def boosted_scores(scores: np.ndarray, config: RerankConfig, popularity: np.ndarray | None = None,
                   ingest_times: np.ndarray | None = None, now: float | None = None) -> np.ndarray:
    """Relevance plus the popularity and freshness bonuses (a missing signal adds nothing)."""
    out = np.asarray(scores, dtype=np.float64).copy()
    if popularity is not None and config.popularity_weight:
        out += config.popularity_weight * np.asarray(popularity, dtype=np.float64)
    if ingest_times is not None and config.freshness_weight:
        t = np.asarray(ingest_times, dtype=np.float64)
        if now is None:
            now = float(np.nanmax(t)) if np.isfinite(t).any() else 0.0
        out += config.freshness_weight * freshness_scores(t, now, config.freshness_half_life_days)
    return out


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance: positions of k picks, best first (ties: earlier position).

    Relevance is min-max scaled to [0, 1]; similarity is the cosine of the vectors.
    """
    n = relevance.shape[0]
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    start = np.argsort(-relevance, kind="stable")
    if diversity == 0.0 or k == 1:
        return start[:k].astype(np.int64)
    rel = relevance[start]
    span = float(rel.max() - rel.min())
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    v = np.asarray(vectors, dtype=np.float64)[start]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    lam = 1.0 - diversity
    taken = np.zeros(n, dtype=bool)
    picks = [0]
    taken[0] = True
    max_sim = v @ v[0]
    for _ in range(k - 1):
        objective = np.where(taken, -np.inf, lam * rel - (1.0 - lam) * max_sim)
        j = int(np.argmax(objective))  # candidates are in relevance order: ties favour relevance
        picks.append(j)
        taken[j] = True
        max_sim = np.maximum(max_sim, v @ v[j])
    return start[np.asarray(picks)].astype(np.int64)


def rerank(
    scores: np.ndarray,
    vectors: np.ndarray | None,
    k: int,
    config: RerankConfig,
    *,
    popularity: np.ndarray | None = None,
    ingest_times: np.ndarray | None = None,
    now: float | None = None,
) -> RerankResult:
    """Pick k of a user's candidates: boost by popularity and freshness, then diversify.

    Args:
        scores: [C] relevance (user · item) of each candidate; all finite.
        vectors: [C, D] candidate item vectors (only needed when config.diversity > 0).
        k: how many to keep (fewer when there are fewer candidates).
        config: weights and the diversity knob.
        popularity: [C] popularity in [0, 1] (see popularity_scores), or None.
        ingest_times: [C] epoch seconds each item was ingested (NaN unknown), or None.
        now: epoch seconds freshness is measured from (None: the newest ingest time).

    Returns:
        RerankResult(order = positions into the candidates, scores = boosted scores).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or not np.isfinite(s).all():
        raise ConfigError("rerank scores must be a 1-D array of finite numbers (drop padding first)")
    final = boosted_scores(s, config, popularity, ingest_times, now)
    if config.diversity > 0.0 and vectors is None:
        raise ConfigError("rerank with diversity > 0 needs the candidate vectors")
    order = mmr(final, vectors if vectors is not None else np.zeros((s.shape[0], 1)), k, config.diversity)
    return RerankResult(order, final[order].astype(np.float32))
