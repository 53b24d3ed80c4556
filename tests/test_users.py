"""User vectors: event weights, recency decay, attention, negatives, comments, cold start."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout
from mmrec.recommend.users import (
    DEFAULT_EVENT_WEIGHTS,
    UserVectorConfig,
    UserVectorError,
    block_similarity,
    cold_start_vector,
    contribution_shares,
    embed_comments,
    event_weights,
    most_similar,
    normalise_blocks,
    recency_decay,
    split_interests,
    user_vector,
)

DAY = 86_400.0
NOW = 1_700_000_000.0
LAYOUT = FusionLayout.from_dims([("visual", "v", 4), ("audio", "a", 4), ("text", "t", 4)])


def basis(i: int, dim: int = 4) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    v[i] = 1.0
    return v


def item(i: int) -> np.ndarray:
    """Fused item whose every block is basis vector i (items i != j are orthogonal)."""
    return LAYOUT.fuse({m: basis(i) for m in LAYOUT.modalities})


A, B, C = item(0), item(1), item(2)


def uvec(items: list[np.ndarray], events: list[str], ages_days: list[float] | None = None,
         values: list[float | None] | None = None, **cfg: object) -> np.ndarray:
    ages = ages_days or [0.0] * len(items)
    return user_vector(np.stack(items), events, values or [None] * len(items),
                       [NOW - a * DAY for a in ages], LAYOUT, NOW, config=UserVectorConfig(**cfg))


def test_event_weight_order_and_partial_views() -> None:
    cfg = UserVectorConfig()
    w = event_weights(["like", "share", "view", "view", "view", "skip", "dislike"],
                      [None, None, 0.95, None, 0.5, None, None], cfg)
    assert list(w) == sorted(w, reverse=True)
    assert w[2] == w[3] == DEFAULT_EVENT_WEIGHTS["view"]  # complete and unknown fraction count fully
    assert w[4] == pytest.approx(0.5 * DEFAULT_EVENT_WEIGHTS["view"])
    assert w[-1] < 0 and w[-2] < 0 < event_weights(["view"], [0.0], cfg)[0] + 1e-9
    custom = UserVectorConfig(event_weights={"skip": -0.5})
    assert custom.event_weights["skip"] == -0.5 and custom.event_weights["like"] == 1.0


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="purr"):
        UserVectorConfig(event_weights={"purr": 1.0})
    for bad in ({"tau": 0}, {"context_size": 0}, {"half_life_days": -1.0}, {"complete_view": 1.5}):
        with pytest.raises(ConfigError):
            UserVectorConfig(**bad)
    with pytest.raises(ConfigError, match="unknown event"):
        event_weights(["purr"], [None], UserVectorConfig())


def test_recency_decay_halves_at_the_half_life() -> None:
    d = recency_decay([NOW, NOW - 10 * DAY, NOW - 20 * DAY, NOW + DAY], NOW, 10.0)
    assert d == pytest.approx([1.0, 0.5, 0.25, 1.0])
    assert list(recency_decay([0.0, NOW], NOW, None)) == [1.0, 1.0]


def test_half_life_aged_like_counts_half_in_the_user_vector() -> None:
    # A and B are orthogonal and both in the context, so attention is equal; B is one
    # half-life old, so per block u ∝ A + 0.5 B and u·A / u·B = 2.
    u = uvec([A, B], ["like", "like"], ages_days=[0.0, 30.0], half_life_days=30.0, context_size=2)
    assert float(u @ A) / float(u @ B) == pytest.approx(2.0, rel=1e-5)
    no_decay = uvec([A, B], ["like", "like"], ages_days=[0.0, 30.0], half_life_days=None, context_size=2)
    assert float(no_decay @ A) == pytest.approx(float(no_decay @ B), rel=1e-6)


def test_attention_weights_follow_softmax_over_context_similarity() -> None:
    # Context = last two positives = A, so cos(A, h) = 1, cos(B, h) = 0:
    # a ∝ (e^(1/tau), e^(1/tau), 1) and u·A / u·B = 2 e^(1/tau).
    hist = [B, A, A]
    ages = [3.0, 2.0, 1.0]
    for tau in (0.5, 2.0):
        u = uvec(hist, ["like"] * 3, ages_days=ages, half_life_days=None, context_size=2, tau=tau)
        assert float(u @ A) / float(u @ B) == pytest.approx(2 * math.exp(1 / tau), rel=1e-5)
    flat = uvec(hist, ["like"] * 3, ages_days=ages, half_life_days=None, context_size=2, tau=1e9)
    assert float(flat @ A) / float(flat @ B) == pytest.approx(2.0, rel=1e-5)


def test_blocks_are_unit_so_dot_is_a_sum_of_cosines() -> None:
    u = uvec([A, B, C], ["like", "view", "share"], values=[None, 0.3, None])
    for b in LAYOUT.blocks:
        assert np.linalg.norm(u[b.offset:b.offset + b.dim]) == pytest.approx(1.0, abs=1e-6)
    assert u.dtype == np.float32 and u.shape == (LAYOUT.dim,)
    weighted = uvec([A], ["like"], modality_weights={"visual": 2.0, "text": 1.0})
    norms = [np.linalg.norm(weighted[b.offset:b.offset + b.dim]) for b in LAYOUT.blocks]
    assert norms == pytest.approx([2.0, 0.0, 1.0])


def test_dislike_pushes_the_user_away_from_an_item() -> None:
    liked_only = uvec([A, C], ["like", "like"])
    with_dislike = uvec([A, C, B], ["like", "like", "dislike"])
    assert float(liked_only @ B) == pytest.approx(0.0, abs=1e-6)
    assert float(with_dislike @ B) < -0.1
    assert float(with_dislike @ A) > 0.5
    skipped = uvec([A, C, B], ["like", "like", "skip"])
    assert float(with_dislike @ B) < float(skipped @ B) < 0  # a skip pushes less than a dislike


def test_all_negative_history_points_away_and_degenerate_histories_raise() -> None:
    u = uvec([B], ["dislike"])
    assert float(u @ B) == pytest.approx(-3.0, abs=1e-5)  # -1 cosine in each of three blocks
    with pytest.raises(UserVectorError, match="empty history"):
        user_vector(np.zeros((0, LAYOUT.dim)), [], [], [], LAYOUT, NOW)
    with pytest.raises(UserVectorError, match="no net direction"):
        uvec([A, A], ["like", "dislike"])
    with pytest.raises(ConfigError, match="rows"):
        user_vector(np.stack([A, B]), ["like"], [None], [NOW], LAYOUT, NOW)


def test_comment_text_joins_the_text_block_with_its_row_weight() -> None:
    comments = {"text": np.stack([basis(3) * 5.0])}  # not unit: must be normalised
    u = user_vector(A[None], ["comment"], [None], [NOW], LAYOUT, NOW, comment_vectors=comments,
                    config=UserVectorConfig(comment_text_weight=0.5))
    t = LAYOUT.split(u)["text"]
    assert t[3] / t[0] == pytest.approx(0.5, rel=1e-5)
    assert LAYOUT.split(u)["visual"] == pytest.approx(basis(0))  # other blocks untouched
    with pytest.raises(ConfigError, match="dim"):
        user_vector(A[None], ["comment"], [None], [NOW], LAYOUT, NOW,
                    comment_vectors={"text": np.ones((1, 3))})


def test_embed_comments_aligns_rows() -> None:
    calls: list[list[str]] = []

    def embed(texts: list[str]) -> dict[str, np.ndarray]:
        calls.append(texts)
        return {"text": np.stack([basis(len(t) % 4) for t in texts])}

    out = embed_comments([None, "ab", "", "abc"], embed, LAYOUT)
    assert calls == [["ab", "abc"]]
    assert out["text"].shape == (4, 4)
    assert out["text"][0].sum() == 0 and out["text"][2].sum() == 0
    assert out["text"][1] == pytest.approx(basis(2)) and out["text"][3] == pytest.approx(basis(3))
    assert embed_comments([None, ""], embed, LAYOUT) == {}


def test_cold_start_from_interests_text() -> None:
    assert split_interests("jazz, travel vlogs;\n cooking ,") == ["jazz", "travel vlogs", "cooking"]
    with pytest.raises(ConfigError):
        split_interests(" , ;")
    # Two interests embedded per tower: each counts equally; a missing tower leaves a zero block.
    u = cold_start_vector({"text": np.stack([basis(0), basis(1) * 3]), "visual": basis(2)}, LAYOUT)
    split = LAYOUT.split(u)
    assert split["text"] == pytest.approx(np.array([1, 1, 0, 0]) / math.sqrt(2), abs=1e-6)
    assert split["visual"] == pytest.approx(basis(2)) and not split["audio"].any()
    assert float(u @ A) == pytest.approx(1 / math.sqrt(2), rel=1e-5)
    with pytest.raises(UserVectorError):
        cold_start_vector({}, LAYOUT)


def test_prior_keeps_its_share_as_history_ages() -> None:
    prior = cold_start_vector({m: basis(3) for m in LAYOUT.modalities}, LAYOUT)
    D = item(3)
    fresh = user_vector(A[None], ["like"], [None], [NOW], LAYOUT, NOW, prior=prior)
    old = user_vector(A[None], ["like"], [None], [NOW - 90 * DAY], LAYOUT, NOW, prior=prior)
    assert float(fresh @ A) > float(fresh @ D) > 0  # history weight 1 vs prior 0.5
    assert float(old @ D) > float(old @ A)  # three half-lives later the prior dominates


def test_explanation_helpers() -> None:
    user = normalise_blocks(np.concatenate([basis(0)] * 3), LAYOUT)
    it = LAYOUT.fuse({"visual": np.array([0.6, 0.8, 0, 0]), "audio": np.array([0.2, 0.98, 0, 0]),
                      "text": np.array([-0.1, 0.99, 0, 0])})
    contrib, shares = contribution_shares(user, it, LAYOUT)
    assert contrib["visual"] == pytest.approx(0.6, abs=1e-3) and contrib["text"] < 0
    assert shares["visual"] == pytest.approx(0.75, abs=1e-3)
    assert shares["audio"] == pytest.approx(0.25, abs=1e-3)
    assert shares["text"] == 0.0 and sum(shares.values()) == pytest.approx(1.0)
    sims = block_similarity(it, A, LAYOUT)
    assert sims["visual"] == pytest.approx(0.6, abs=1e-3) and max(sims, key=sims.get) == "visual"
    silent = LAYOUT.fuse({"visual": basis(0)})
    assert set(block_similarity(silent, A, LAYOUT)) == {"visual"}
    hist = np.stack([B, A, C])
    assert most_similar(hist, it) == 0  # B: cosines 0.8 + 0.98 + 0.99 beat A's 0.6 + 0.2 - 0.1
    assert most_similar(hist, it, mask=np.array([False, True, True])) == 1  # then A beats C (0)
    assert most_similar(hist, it, mask=np.zeros(3, bool)) is None
