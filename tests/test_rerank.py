"""Rerank: boosts, MMR diversity, and the diversity=0 identity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrec.errors import ConfigError
from mmrec.recommend.rerank import (
    RerankConfig,
    freshness_scores,
    mmr,
    popularity_scores,
    rerank,
)

DAY = 86_400.0
PLAIN = RerankConfig(popularity_weight=0.0, freshness_weight=0.0, diversity=0.0)


def e(i: int, dim: int = 4) -> np.ndarray:
    v = np.zeros(dim)
    v[i] = 1.0
    return v


# Three near-duplicates of one direction score highest; two other directions trail.
VECS = np.stack([e(0), e(0), e(0), e(1), e(2)])
SCORES = np.array([1.0, 0.99, 0.98, 0.5, 0.4])


def test_diversity_zero_reproduces_the_score_order() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=40).round(1)  # rounding makes ties: earlier position wins
    vecs = rng.normal(size=(40, 8))
    res = rerank(scores, vecs, 15, PLAIN)
    assert list(res.order) == list(np.argsort(-scores, kind="stable")[:15])
    assert res.scores == pytest.approx(scores[res.order])
    assert list(rerank(scores, None, 15, PLAIN).order) == list(res.order)  # vectors not needed


def test_full_diversity_picks_dissimilar_items() -> None:
    assert list(rerank(SCORES, VECS, 3, PLAIN).order) == [0, 1, 2]
    res = rerank(SCORES, VECS, 3, RerankConfig(popularity_weight=0, freshness_weight=0, diversity=1.0))
    assert list(res.order) == [0, 3, 4]
    assert res.scores == pytest.approx([1.0, 0.5, 0.4])


def test_diversity_knob_trades_off_by_hand_computed_mmr() -> None:
    # Relevance scaled to [0, 1]: (1, .983, .967, .167, 0). After item 0 at diversity d:
    # item 1 scores (1-d)*.983 - d*1, item 3 scores (1-d)*.167; they cross near d = 0.45.
    assert list(mmr(SCORES, VECS, 3, 0.01)) == [0, 1, 2]
    assert list(mmr(SCORES, VECS, 3, 0.3)) == [0, 1, 2]
    assert list(mmr(SCORES, VECS, 3, 0.5)) == [0, 3, 4]
    assert list(mmr(SCORES, VECS, 10, 0.5)) == [0, 3, 4, 1, 2]  # k beyond candidates: all of them
    assert mmr(SCORES[:0], VECS[:0], 3, 0.5).size == 0


def test_popularity_and_freshness_boosts() -> None:
    assert popularity_scores(np.array([0, 1, 3])) == pytest.approx([0.0, math.log(2) / math.log(4), 1.0])
    assert not popularity_scores(np.zeros(3)).any()
    now = 1_000 * DAY
    fresh = freshness_scores(np.array([now, now - 14 * DAY, np.nan, now + DAY]), now, 14.0)
    assert fresh == pytest.approx([1.0, 0.5, 0.0, 1.0])

    cfg = RerankConfig(popularity_weight=0.1, freshness_weight=0.0, diversity=0.0)
    res = rerank(np.array([0.5, 0.5, 0.45]), None, 3, cfg, popularity=np.array([0.0, 1.0, 0.8]))
    assert list(res.order) == [1, 2, 0]
    assert res.scores == pytest.approx([0.6, 0.53, 0.5])

    cfg = RerankConfig(popularity_weight=0.0, freshness_weight=0.05, freshness_half_life_days=14, diversity=0)
    times = np.array([now - 14 * DAY, now, now - 28 * DAY])
    res = rerank(np.array([0.5, 0.5, 0.5]), None, 3, cfg, ingest_times=times, now=now)
    assert list(res.order) == [1, 0, 2]
    assert res.scores == pytest.approx([0.55, 0.525, 0.5125])
    # Without `now`, the newest ingest time is "now".
    assert list(rerank(np.array([0.5, 0.5, 0.5]), None, 3, cfg, ingest_times=times).order) == [1, 0, 2]


def test_validation_and_neutrality() -> None:
    with pytest.raises(ConfigError, match="diversity"):
        RerankConfig(diversity=1.5)
    with pytest.raises(ConfigError, match="half_life"):
        RerankConfig(freshness_half_life_days=0)
    with pytest.raises(ConfigError, match="vectors"):
        rerank(SCORES, None, 3, RerankConfig(diversity=0.5))
    with pytest.raises(ConfigError, match="finite"):
        rerank(np.array([1.0, -np.inf]), None, 2, PLAIN)
    assert PLAIN.is_neutral()
    assert RerankConfig(diversity=0.0).is_neutral(has_popularity=False, has_freshness=False)
    assert not RerankConfig(diversity=0.0).is_neutral()
    assert not RerankConfig(popularity_weight=0, freshness_weight=0, diversity=0.1).is_neutral()
