"""Batched recommendation: clustered users get their cluster, exclusions, rerank, explanations."""

from __future__ import annotations

import numpy as np
import pytest
from mmrec.kernels import topk

from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout
from mmrec.recommend.evaluate import evaluate
from mmrec.recommend.interactions import Interaction
from mmrec.recommend.ranker import (
    RecommendOptions,
    UserHistory,
    explain,
    histories_from_interactions,
    modality_scores,
    popularity_counts,
    rank,
    recommend,
    seen_csr,
    user_matrix,
    vector_recommender,
)
from mmrec.recommend.rerank import RerankConfig, popularity_scores, rerank
from mmrec.recommend.users import cold_start_vector

DAY = 86_400.0
NOW = 1_700_000_000.0
DIM = 8
LAYOUT = FusionLayout.from_dims([("visual", "v", DIM), ("audio", "a", DIM), ("text", "t", DIM)])
PLAIN = RerankConfig(popularity_weight=0.0, freshness_weight=0.0, diversity=0.0)
N_CLUSTERS, PER_CLUSTER = 4, 25


def clustered_items(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """[N, D] fused items in N_CLUSTERS tight clusters, and each item's cluster."""
    rng = np.random.default_rng(seed)
    centres = {m: rng.normal(size=(N_CLUSTERS, DIM)) for m in LAYOUT.modalities}
    labels = np.repeat(np.arange(N_CLUSTERS), PER_CLUSTER)
    items = np.stack([LAYOUT.fuse({m: centres[m][c] + 0.35 * rng.normal(size=DIM) for m in LAYOUT.modalities})
                      for c in labels])
    return items.astype(np.float32), labels


def synthetic_log(labels: np.ndarray, n_users: int = 24, per_user: int = 8,
                  seed: int = 1) -> list[Interaction]:
    """Each user likes/views items of one cluster, with a stray skip elsewhere."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        cluster = u % N_CLUSTERS
        mine = rng.choice(np.flatnonzero(labels == cluster), size=per_user, replace=False)
        for t, j in enumerate(mine):
            event, value = ("like", None) if t % 2 else ("view", 0.95)
            rows.append(Interaction(f"u{u}", f"i{j}", event, value, NOW - (per_user - t) * DAY))
        other = rng.choice(np.flatnonzero(labels != cluster))
        rows.append(Interaction(f"u{u}", f"i{other}", "skip", None, NOW - 0.5 * DAY))
    return rows


ITEMS, LABELS = clustered_items()
IDS = [f"i{j}" for j in range(len(ITEMS))]
INDEX = {x: j for j, x in enumerate(IDS)}


def test_clustered_users_get_unseen_items_from_their_cluster() -> None:
    hist = histories_from_interactions(synthetic_log(LABELS), INDEX)
    um = user_matrix(hist, ITEMS, LAYOUT, NOW)
    assert len(um.user_ids) == 24 and not um.skipped and um.vectors.shape == (24, LAYOUT.dim)
    histories = [hist[u] for u in um.user_ids]
    recs = recommend(um.vectors, ITEMS, LAYOUT, RecommendOptions(k=6, backend="numpy"), histories=histories,
                     popularity=popularity_counts(hist, len(IDS)))
    for user, h, rs in zip(um.user_ids, histories, recs, strict=True):
        assert len(rs) == 6 and [r.rank for r in rs] == list(range(1, 7))
        cluster = int(user[1:]) % N_CLUSTERS
        assert all(LABELS[r.item_index] == cluster for r in rs), user
        assert not {r.item_index for r in rs} & set(h.item_indices.tolist())
        for r in rs:
            assert r.relevance == pytest.approx(sum(r.scores.values()), abs=1e-4)
            assert sum(r.shares.values()) == pytest.approx(1.0, abs=1e-6)
            assert r.explanation is None and r.because_index is None


def test_include_seen_and_batching_agree_with_the_kernel() -> None:
    hist = histories_from_interactions(synthetic_log(LABELS, n_users=5), INDEX)
    um = user_matrix(hist, ITEMS, LAYOUT, NOW)
    histories = [hist[u] for u in um.user_ids]
    opts = RecommendOptions(k=7, backend="numpy", rerank=PLAIN, exclude_seen=False, batch_size=2)
    idx, sc = rank(um.vectors, ITEMS, opts, histories=histories)
    ref_i, ref_s = topk(um.vectors, ITEMS, 7, backend="numpy")
    assert np.array_equal(idx, ref_i) and np.allclose(sc, ref_s)
    excl_i, _ = rank(um.vectors, ITEMS, RecommendOptions(k=7, backend="numpy", rerank=PLAIN, batch_size=3),
                     histories=histories)
    ref_i, _ = topk(um.vectors, ITEMS, 7, exclude=seen_csr(histories), backend="numpy")
    assert np.array_equal(excl_i, ref_i)
    assert any(set(i) & set(h.item_indices.tolist()) for i, h in zip(idx.tolist(), histories, strict=True))
    # More results asked than items: padded with -1 / -inf.
    small_i, small_s = rank(um.vectors[:1], ITEMS[:3], RecommendOptions(k=5, backend="numpy"),
                            histories=[None])
    assert (small_i[0, 3:] == -1).all() and np.isneginf(small_s[0, 3:]).all()


def test_rerank_stage_promotes_popular_and_diversifies() -> None:
    user = ITEMS[LABELS == 0].mean(axis=0, keepdims=True)
    plain_i, plain_s = rank(user, ITEMS, RecommendOptions(k=5, backend="numpy", rerank=PLAIN))
    # An item just outside the top 5 becomes the most popular: a strong weight promotes it.
    runner_up = int(topk(user, ITEMS, 6, backend="numpy")[0][0, 5])
    counts = np.zeros(len(IDS))
    counts[runner_up] = 10
    boosted = RerankConfig(popularity_weight=1.0, freshness_weight=0.0, diversity=0.0)
    pop_i, pop_s = rank(user, ITEMS, RecommendOptions(k=5, backend="numpy", rerank=boosted),
                        popularity=counts)
    assert pop_i[0, 0] == runner_up and runner_up not in plain_i[0]
    assert pop_s[0, 0] == pytest.approx(float(user[0] @ ITEMS[runner_up]) + 1.0, abs=1e-5)
    # Full diversity over a candidate pool spanning clusters picks from more clusters.
    diverse = RecommendOptions(k=4, backend="numpy", candidate_factor=25,
                               rerank=RerankConfig(popularity_weight=0, freshness_weight=0, diversity=1.0))
    div_i, _ = rank(user, ITEMS, diverse)
    assert len(set(LABELS[div_i[0]])) > len(set(LABELS[plain_i[0, :4]])) == 1


def test_new_items_are_recommendable_at_once_and_fresh_ones_rank_up() -> None:
    user = ITEMS[LABELS == 2].mean(axis=0, keepdims=True)
    new = np.vstack([ITEMS, user / np.linalg.norm(user) * np.sqrt(3)]).astype(np.float32)
    idx, _ = rank(user, new, RecommendOptions(k=3, backend="numpy", rerank=PLAIN))
    assert idx[0, 0] == len(ITEMS)
    times = np.full(len(ITEMS), NOW - 365 * DAY)
    plain_i, _ = rank(user, ITEMS, RecommendOptions(k=5, backend="numpy", rerank=PLAIN))
    times[plain_i[0, 4]] = NOW
    fresh = RerankConfig(popularity_weight=0, freshness_weight=1.0, diversity=0)
    fresh_i, _ = rank(user, ITEMS, RecommendOptions(k=5, backend="numpy", rerank=fresh),
                      ingest_times=times, now=NOW)
    assert fresh_i[0, 0] == plain_i[0, 4]


def test_explanations_come_from_the_numbers() -> None:
    e = np.eye(DIM, dtype=np.float32)
    liked = LAYOUT.fuse({"visual": e[0], "audio": e[1], "text": e[2]})
    # Same soundtrack, half-similar topic, a different look.
    rec = LAYOUT.fuse({"visual": e[3], "audio": e[1], "text": e[2] + np.sqrt(3) * e[4]})
    other = LAYOUT.fuse({"visual": e[5], "audio": e[5], "text": e[5]})
    items = np.stack([liked, rec, other])
    h = UserHistory(np.array([0]), ("like",), np.array([np.nan]), np.array([NOW]))
    um = user_matrix({"u": h}, items, LAYOUT, NOW)
    opts = RecommendOptions(k=2, backend="numpy", explain=True, rerank=PLAIN)
    (recs,) = recommend(um.vectors, items, LAYOUT, opts, histories=[h], titles=["Sunset Drive", "R", "O"])
    top = recs[0]
    assert top.item_index == 1 and top.because_index == 0
    assert top.shares["audio"] == pytest.approx(2 / 3, abs=1e-4) and top.shares["visual"] == 0.0
    assert top.explanation == ("sounds like Sunset Drive you liked; similar soundtrack and topic "
                               "(audio 0.67, text 0.33, visual 0.00)")
    out = top.to_json(["id0", "id1", "id2"], ["/a", "/b", "/c"])
    assert out["because"] == {"item_id": "id0", "path": "/a"} and out["item_id"] == "id1"
    assert set(out) == {"rank", "item_id", "path", "score", "scores", "explanation", "because"}
    assert "explanation" not in recommend(um.vectors, items, LAYOUT, RecommendOptions(k=1, backend="numpy"),
                                          histories=[h])[0][0].to_json(["a", "b", "c"], ["a", "b", "c"])
    # A viewed audio item is "listened to"; a visual-led match "looks like".
    view = UserHistory(np.array([0]), ("view",), np.array([1.0]), np.array([NOW]))
    (recs,) = recommend(um.vectors, items, LAYOUT, opts, histories=[view], titles=["Song", "R", "O"],
                        kinds=["audio", "audio", "audio"])
    assert recs[0].explanation.startswith("sounds like Song you listened to;")
    visual_led = explain({"visual": 0.7, "audio": 0.3}, liked, LAYOUT, (liked, "Clip", "share", None))
    assert visual_led.startswith("looks like Clip you shared; similar look and soundtrack")


def test_cold_start_user_gets_recommendations_and_an_interest_explanation() -> None:
    text_centre = ITEMS[LABELS == 3][:, 2 * DIM:].mean(axis=0)
    user = cold_start_vector({"text": text_centre}, LAYOUT)
    (recs,) = recommend(user, ITEMS, LAYOUT, RecommendOptions(k=5, backend="numpy", explain=True),
                        histories=[None])
    assert len(recs) == 5 and all(LABELS[r.item_index] == 3 for r in recs)
    assert recs[0].because_index is None
    assert recs[0].explanation.startswith("matches your interests; similar topic (text 1.00")


def test_helpers_and_validation() -> None:
    rows = [Interaction("u", "i1", "like", None, 2.0), Interaction("u", "i0", "view", 0.2, 1.0),
            Interaction("v", "i1", "share", None, 1.0), Interaction("v", "gone", "like", None, 1.0),
            Interaction("w", "gone", "like", None, 1.0)]
    hist = histories_from_interactions(rows, INDEX)
    assert set(hist) == {"u", "v"} and list(hist["u"].item_indices) == [0, 1]  # time order
    assert list(hist["u"].positive) == [False, True]
    counts = popularity_counts(hist, 3)
    assert list(counts) == [0, 2, 0]
    indptr, ids = seen_csr([hist["u"], None, hist["v"]])
    assert list(indptr) == [0, 2, 2, 3] and list(ids) == [0, 1, 1]
    with pytest.raises(ConfigError):
        RecommendOptions(k=0)
    with pytest.raises(ConfigError, match="histories"):
        rank(ITEMS[:2], ITEMS, RecommendOptions(backend="numpy"), histories=[None])
    um = user_matrix({"x": UserHistory(np.array([0, 0]), ("like", "dislike"), np.full(2, np.nan),
                                       np.array([NOW, NOW]))}, ITEMS, LAYOUT, NOW)
    assert um.user_ids == [] and "no net direction" in um.skipped["x"] and um.vectors.shape == (0, LAYOUT.dim)


def test_evaluation_shows_mmrec_beating_random_on_clusters() -> None:
    rows = synthetic_log(LABELS, n_users=40, per_user=10, seed=5)
    mm = vector_recommender(IDS, ITEMS, LAYOUT, options=RecommendOptions(backend="numpy"))
    report = evaluate({"mmrec": mm}, rows, IDS, k=10, holdout="last", seed=0)
    m, rnd = report.row("mmrec"), report.row("random")
    assert report.users == 40
    assert m.recall > 3 * rnd.recall and m.ndcg > 3 * rnd.ndcg and m.recall > 0.3
    assert m.users == rnd.users == 40
    time_report = evaluate({"mmrec": mm}, rows, IDS, k=10, holdout=0.2)
    assert time_report.row("mmrec").recall > time_report.row("random").recall


@pytest.mark.parametrize("diversity", [0.0, 0.6])
def test_batched_rerank_matches_the_per_user_rerank(diversity: float) -> None:
    hist = histories_from_interactions(synthetic_log(LABELS, n_users=6), INDEX)
    um = user_matrix(hist, ITEMS, LAYOUT, NOW)
    histories = [hist[u] for u in um.user_ids]
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 20, size=len(IDS))
    times = NOW - rng.uniform(0, 60, size=len(IDS)) * DAY
    cfg = RerankConfig(popularity_weight=0.2, freshness_weight=0.3, diversity=diversity)
    opts = RecommendOptions(k=5, backend="numpy", candidate_factor=4, batch_size=4, rerank=cfg)
    idx, sc = rank(um.vectors, ITEMS, opts, histories=histories, popularity=counts, ingest_times=times,
                   now=NOW)
    cand_i, cand_s = topk(um.vectors, ITEMS, 20, exclude=seen_csr(histories), backend="numpy")
    pop = popularity_scores(counts)
    for u in range(len(um.user_ids)):
        c = cand_i[u]
        res = rerank(cand_s[u], ITEMS[c], 5, cfg, popularity=pop[c], ingest_times=times[c], now=NOW)
        assert list(idx[u]) == list(c[res.order])
        assert sc[u] == pytest.approx(res.scores, abs=1e-5)
    parts = modality_scores(um.vectors, ITEMS, idx, LAYOUT)
    relevance = sum(parts.values())
    assert relevance == pytest.approx(np.einsum("ud,ukd->uk", um.vectors, ITEMS[idx]), abs=1e-5)
    padded = modality_scores(um.vectors[:1], ITEMS, np.array([[3, -1]]), LAYOUT)
    assert np.isnan(padded["audio"][0, 1]) and not np.isnan(padded["audio"][0, 0])


def test_because_is_always_a_positive_history_item() -> None:
    e = np.eye(DIM, dtype=np.float32)
    liked, disliked = (LAYOUT.fuse({m: e[i] for m in LAYOUT.modalities}) for i in (0, 1))
    near_disliked = LAYOUT.fuse({m: 0.9 * e[1] + 0.3 * e[0] for m in LAYOUT.modalities})
    items = np.stack([liked, disliked, near_disliked])
    h = UserHistory(np.array([0, 1]), ("like", "dislike"), np.full(2, np.nan), np.array([NOW - 1, NOW]))
    um = user_matrix({"u": h}, items, LAYOUT, NOW)
    (recs,) = recommend(um.vectors, items, LAYOUT, RecommendOptions(k=3, backend="numpy", explain=True),
                        histories=[h], titles=["Liked", "Disliked", "Near"])
    assert [r.item_index for r in recs] == [2]
    assert recs[0].because_index == 0 and "Liked you liked" in recs[0].explanation
