"""Batched recommendation: user vectors -> kernel top-k candidates -> rerank -> explain.

Storage-free: items are a [N, D] fused matrix addressed by row index; the caller maps
indices to ids, paths and titles. Candidates come from `mmrec.kernels.topk` (seen items
excluded through its CSR), k * candidate_factor per user so the rerank has room.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout
from mmrec.kernels import check_finite
from mmrec.recommend.evaluate import Recommender
from mmrec.recommend.interactions import Interaction, by_user, is_positive
from mmrec.recommend.rerank import RerankConfig, boosted_scores, mmr, popularity_scores
from mmrec.recommend.sentiment import LOVED, NEUTRAL_BAND
from mmrec.recommend.users import (
    UserVectorConfig,
    UserVectorError,
    block_similarity,
    contribution_shares_many,
    most_similar,
    unit_rows,
    user_vector,
)
from mmrec.scoring import prepare, topk

log = logging.getLogger(__name__)

# Plain-language pieces of an explanation, keyed by modality / event / item kind.
NOUNS = {"visual": "look", "audio": "soundtrack", "text": "topic"}
LEADS = {"visual": "looks like", "audio": "sounds like", "text": "is much like"}
VERBS = {"like": "liked", "share": "shared", "comment": "commented on", "view": "watched"}
LOVED_VERB = "loved"  # the user's comment on the item was glowing (sentiment >= LOVED)
VIEW_VERBS_BY_KIND = {"audio": "listened to"}


@dataclass(frozen=True)
class UserHistory:
    """One user's interactions as item row indices, in time order."""

    item_indices: np.ndarray
    events: tuple[str, ...]
    values: np.ndarray  # NaN where no fraction was given
    timestamps: np.ndarray
    texts: tuple[str | None, ...] = ()
    sentiments: tuple[float | None, ...] = ()  # per row, the comment's sentiment (None: none)

    @property
    def positive(self) -> np.ndarray:
        """Mask of rows that count as wanted (see interactions.is_positive)."""
        return np.array([is_positive(e, None if np.isnan(v) else float(v))
                         for e, v in zip(self.events, self.values, strict=True)], dtype=bool)

    def sentiment_array(self) -> np.ndarray:
        """Per row, the comment's sentiment (NaN where there is none)."""
        if not self.sentiments:
            return np.full(len(self.events), np.nan)
        return np.array([np.nan if s is None else s for s in self.sentiments], dtype=np.float64)


@dataclass(frozen=True)
class RecommendOptions:
    """One recommendation run.

    Attributes:
        k: results per user.
        exclude_seen: never recommend an item in the user's history.
        candidate_factor: the kernels fetch k * this many candidates for the rerank.
        explain: build `because` and the explanation sentence.
        backend: scoring backend ("auto", "numpy", "cpu", "cuda", "torch"; see mmrec.scoring).
        batch_size: users scored per kernel call.
        rerank: popularity / freshness / diversity settings.
        explain_min_share: modalities with at least this share of the score are named.
    """

    k: int = 10
    exclude_seen: bool = True
    candidate_factor: int = 5
    explain: bool = False
    backend: str = "auto"
    batch_size: int = 1024
    rerank: RerankConfig = field(default_factory=RerankConfig)
    explain_min_share: float = 0.25

    def __post_init__(self) -> None:
        if self.k <= 0 or self.candidate_factor < 1 or self.batch_size < 1:
            raise ConfigError(f"k ({self.k}), candidate_factor ({self.candidate_factor}) and "
                              f"batch_size ({self.batch_size}) must be positive")


def options_from(*, diversity: float = 0.2, popularity_weight: float = 0.05,
                 freshness_weight: float = 0.05, half_life_days: float = 30.0, exclude_seen: bool = True,
                 backend: str = "auto") -> tuple[RecommendOptions, UserVectorConfig]:
    """The recommend knobs of the CLI and the HTTP API, as options and a user-vector config."""
    rerank = RerankConfig(popularity_weight=popularity_weight, freshness_weight=freshness_weight,
                          diversity=diversity)
    return (RecommendOptions(exclude_seen=exclude_seen, backend=backend, rerank=rerank),
            UserVectorConfig(half_life_days=half_life_days))


@dataclass(frozen=True)
class Recommendation:
    """One recommended item for one user.

    `score` is the reranked score (relevance + boosts); `scores` the per-modality parts
    u_m · v_m of the relevance; `shares` their shares of its positive part.
    """

    rank: int
    item_index: int
    score: float
    relevance: float
    scores: dict[str, float]
    shares: dict[str, float]
    because_index: int | None = None
    explanation: str | None = None

    def to_json(self, ids: Sequence[str], paths: Sequence[str]) -> dict[str, Any]:
        """The `--json` record: rank, item_id, path, score, scores (+ explanation, because)."""
        out: dict[str, Any] = {"rank": self.rank, "item_id": ids[self.item_index],
                               "path": paths[self.item_index], "score": self.score,
                               "scores": self.scores}
        if self.explanation is not None:
            b = self.because_index
            out["explanation"] = self.explanation
            out["because"] = None if b is None else {"item_id": ids[b], "path": paths[b]}
        return out


@dataclass(frozen=True)
class UserMatrix:
    """User vectors for many users: row i of `vectors` belongs to `user_ids[i]`."""

    user_ids: list[str]
    vectors: np.ndarray
    skipped: dict[str, str]


def histories_from_interactions(rows: Sequence[Interaction],
                                item_index: Mapping[str, int]) -> dict[str, UserHistory]:
    """Per-user histories in time order; rows whose item is not in `item_index` are dropped."""
    out: dict[str, UserHistory] = {}
    dropped = 0
    for user, rs in by_user(rows).items():
        kept = [r for r in rs if r.item_id in item_index]
        dropped += len(rs) - len(kept)
        if kept:
            out[user] = UserHistory(
                np.array([item_index[r.item_id] for r in kept], dtype=np.int64),
                tuple(r.event for r in kept),
                np.array([np.nan if r.value is None else r.value for r in kept], dtype=np.float64),
                np.array([r.timestamp for r in kept], dtype=np.float64),
                tuple(r.text for r in kept), tuple(r.sentiment for r in kept))
    if dropped:
        log.info("%d interactions name items that are no longer in the catalog; ignored", dropped)
    return out


def user_matrix(histories: Mapping[str, UserHistory], items: np.ndarray, layout: FusionLayout,
                now: float, config: UserVectorConfig | None = None,
                comment_vectors: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                priors: Mapping[str, np.ndarray] | None = None) -> UserMatrix:
    """User vectors for every user with a usable history; the others are listed in `skipped`.

    Args:
        histories: user id -> history (histories_from_interactions).
        items: [N, D] fused item vectors.
        layout: the fusion layout.
        now: epoch seconds ages are measured from.
        config: user-vector settings.
        comment_vectors: user id -> {modality: [T, d]} aligned with the history rows.
        priors: user id -> interests vector to blend in (see user_vector's prior).
    """
    ids: list[str] = []
    rows: list[np.ndarray] = []
    skipped: dict[str, str] = {}
    for user, h in histories.items():
        try:
            rows.append(user_vector(items[h.item_indices], h.events, h.values, h.timestamps, layout, now,
                                    (comment_vectors or {}).get(user), config,
                                    (priors or {}).get(user), h.sentiments or None))
            ids.append(user)
        except UserVectorError as e:
            skipped[user] = str(e)
    vectors = np.stack(rows).astype(np.float32) if rows else np.zeros((0, layout.dim), np.float32)
    return UserMatrix(ids, vectors, skipped)


def popularity_counts(histories: Mapping[str, UserHistory], n_items: int) -> np.ndarray:
    """Per item, how many distinct users had a positive event on it."""
    counts = np.zeros(n_items, dtype=np.int64)
    for h in histories.values():
        counts[np.unique(h.item_indices[h.positive])] += 1
    return counts


def seen_csr(histories: Sequence[UserHistory | None]) -> tuple[np.ndarray, np.ndarray]:
    """Exclusion CSR (indptr, item indices) for the kernels; None means nothing seen."""
    lists = [np.unique(h.item_indices) if h is not None else np.zeros(0, np.int64) for h in histories]
    indptr = np.zeros(len(lists) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([x.size for x in lists])
    return indptr, (np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64))


def rank(users: np.ndarray, items: np.ndarray, options: RecommendOptions, *,
         histories: Sequence[UserHistory | None] | None = None, popularity: np.ndarray | None = None,
         ingest_times: np.ndarray | None = None, now: float | None = None,
         popularity_top: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item indices and reranked scores for every user, batched through the kernels.

    Args:
        users: [U, D] user vectors. items: [N, D] fused item vectors (float32 or float16).
        options: k, exclusions, candidate factor, backend, rerank settings.
        histories: per user (aligned with `users`), for exclude_seen; None entries are
            users without history (cold start).
        popularity: [N] raw per-item counts (popularity_counts), or None.
        popularity_top: the catalog's largest count when `items` is a subset of it
            (candidates), so the popularity bonus is scaled as for the whole catalog.
        ingest_times: [N] epoch seconds each item was ingested (NaN unknown), or None.
        now: epoch seconds for freshness (None: the newest ingest time).

    Returns:
        (int64 [U, k], float32 [U, k]); rows with fewer results end in -1 / -inf.
    """
    users = np.atleast_2d(np.asarray(users, dtype=np.float32))
    n_users, n_items, k = users.shape[0], items.shape[0], options.k
    if histories is not None and len(histories) != n_users:
        raise ConfigError(f"{len(histories)} histories for {n_users} users")
    cfg = options.rerank
    pop = popularity_scores(popularity, popularity_top) if popularity is not None else None
    neutral = cfg.is_neutral(pop is not None, ingest_times is not None)
    fetch = k if neutral else max(k, min(n_items, k * options.candidate_factor))
    # Popularity + freshness bonus per catalog item, computed once for every user.
    bonus = None if neutral else boosted_scores(np.zeros(n_items), cfg, pop, ingest_times, now)
    out_i = np.full((n_users, k), -1, dtype=np.int64)
    out_s = np.full((n_users, k), -np.inf, dtype=np.float32)
    check_finite("items", np.asarray(items))  # once, not once per batch of users
    scored = prepare(items, options.backend)  # on a GPU: copied there once, not per batch
    for start in range(0, n_users, options.batch_size):
        stop = min(start + options.batch_size, n_users)
        exclude = seen_csr(histories[start:stop]) if options.exclude_seen and histories is not None else None
        idx, sc = topk(users[start:stop], scored, fetch, exclude=exclude, backend=options.backend,
                       trusted_items=True)
        if bonus is None:
            out_i[start:stop], out_s[start:stop] = idx[:, :k], sc[:, :k]
            continue
        valid = idx >= 0
        final = np.where(valid, sc + bonus[np.where(valid, idx, 0)], -np.inf)
        if cfg.diversity == 0.0:  # boosts only: one stable sort for the whole batch
            order = np.argsort(-final, axis=1, kind="stable")[:, :k]
            out_i[start:stop] = np.where(np.take_along_axis(valid, order, 1),
                                         np.take_along_axis(idx, order, 1), -1)
            out_s[start:stop] = np.take_along_axis(final, order, 1)
            continue
        for r in range(stop - start):
            cand = idx[r][valid[r]]
            picks = mmr(final[r][valid[r]], items[cand], k, cfg.diversity)
            out_i[start + r, : picks.size] = cand[picks]
            out_s[start + r, : picks.size] = final[r][valid[r]][picks]
    return out_i, out_s


def modality_scores(users: np.ndarray, items: np.ndarray, idx: np.ndarray,
                    layout: FusionLayout) -> dict[str, np.ndarray]:
    """Per-modality parts u_m · v_m of each ranked item's relevance ([U, k] each; NaN for padding).

    Gathers [U, k, d] per block: call it per batch of users for very large U.
    """
    users = np.atleast_2d(np.asarray(users, dtype=np.float32))
    valid = idx >= 0
    out: dict[str, np.ndarray] = {}
    for b in layout.blocks:
        sl = slice(b.offset, b.offset + b.dim)
        picked = np.asarray(items[np.where(valid, idx, 0), sl], np.float32)  # [U, k, d]
        got = np.einsum("ukd,ud->uk", picked, users[:, sl])
        out[b.modality] = np.where(valid, got, np.nan).astype(np.float32)
    return out


def format_shares(shares: Mapping[str, float]) -> str:
    """'visual 0.61, audio 0.22, text 0.17' (largest first)."""
    return ", ".join(f"{m} {s:.2f}" for m, s in sorted(shares.items(), key=lambda x: -x[1]))


def explain(shares: Mapping[str, float], item: np.ndarray, layout: FusionLayout,
            because: tuple[np.ndarray, str, str, str | None] | None, min_share: float = 0.25,
            loved: bool = False) -> str:
    """One plain sentence from the numbers.

    Args:
        shares: per-modality shares of the user's score for the item.
        item: the recommended item's fused vector.
        layout: the fusion layout.
        because: (fused vector, title, event, kind) of the history item it most resembles,
            or None (cold start / no positive history).
        min_share: a modality is named when its share reaches this (else the top one).
        loved: the user's comment on the `because` item was glowing: "you loved X".
    """
    ranked = sorted((m for m in shares if shares[m] > 0), key=lambda m: -shares[m])
    named = [m for m in ranked if shares[m] >= min_share] or ranked[:1]
    why = f"similar {' and '.join(NOUNS.get(m, m) for m in named)}" if named else "weak match"
    tail = f"{why} ({format_shares(shares)})"
    if because is None:
        return f"matches your interests; {tail}"
    vec, title, event, kind = because
    sims = block_similarity(item, vec, layout)
    lead = LEADS.get(max(sims, key=lambda m: sims[m]), "is like") if sims else "is like"
    verb = VIEW_VERBS_BY_KIND.get(kind or "", VERBS["view"]) if event == "view" else VERBS.get(event, event)
    verb = LOVED_VERB if loved else verb
    return f"{lead} {title} you {verb}; {tail}"


class _Because:
    """The positive history item (other than j) most like item j, with what explain() needs,
    and whether the user's comment on it was glowing. An item the user complained about
    in a comment (sentiment <= -NEUTRAL_BAND) is never the `because`. The history's unit
    rows are made once per user, not once per recommended item."""

    def __init__(self, h: UserHistory | None, items: np.ndarray, titles: Sequence[str] | None,
                 kinds: Sequence[str] | None) -> None:
        self.h, self.items, self.titles, self.kinds = h, items, titles, kinds
        if h is None or not h.item_indices.size:
            self.h = None
            return
        self.sentiment = h.sentiment_array()
        panned = np.isin(h.item_indices, h.item_indices[self.sentiment <= -NEUTRAL_BAND])
        self.allowed = h.positive & ~panned
        rows = np.asarray(np.asarray(items[h.item_indices], np.float32), np.float64)
        self.unit = unit_rows(rows.reshape(rows.shape[0], -1))

    def __call__(self, j: int, item: np.ndarray
                 ) -> tuple[int | None, tuple[np.ndarray, str, str, str | None] | None, bool]:
        h = self.h
        if h is None:
            return None, None, False
        row = most_similar(self.unit, item, self.allowed & (h.item_indices != j), unit=True)
        if row is None:
            return None, None, False
        b = int(h.item_indices[row])
        loved = bool(np.any(self.sentiment[h.item_indices == b] >= LOVED))
        return b, (np.asarray(self.items[b], np.float32),
                   self.titles[b] if self.titles is not None else f"item {b}",
                   h.events[row], self.kinds[b] if self.kinds is not None else None), loved


def recommend(users: np.ndarray, items: np.ndarray, layout: FusionLayout, options: RecommendOptions, *,
              histories: Sequence[UserHistory | None] | None = None, popularity: np.ndarray | None = None,
              ingest_times: np.ndarray | None = None, now: float | None = None,
              titles: Sequence[str] | None = None, kinds: Sequence[str] | None = None,
              popularity_top: float | None = None) -> list[list[Recommendation]]:
    """Recommendations with per-modality scores (and explanations) for each user.

    Args:
        users, items, options, histories, popularity, ingest_times, now, popularity_top:
            as for `rank`.
        layout: the fusion layout (per-modality scores, explanations).
        titles: per item, the name used in explanations (default "item <index>").
        kinds: per item, "video"/"audio" (picks "watched" or "listened to").

    Returns:
        One list per user, best first, at most options.k long.
    """
    users = np.atleast_2d(np.asarray(users, dtype=np.float32))
    idx, sc = rank(users, items, options, histories=histories, popularity=popularity,
                   ingest_times=ingest_times, now=now, popularity_top=popularity_top)
    out: list[list[Recommendation]] = []
    for u in range(users.shape[0]):
        h = histories[u] if histories is not None else None
        because_of = _Because(h, items, titles, kinds) if options.explain else None
        recs: list[Recommendation] = []
        pad = np.flatnonzero(idx[u] < 0)  # -1 pads a list shorter than k
        picked = idx[u][: pad[0] if pad.size else idx[u].size]
        rows = np.asarray(items[picked], dtype=np.float32)
        parts = contribution_shares_many(users[u], rows, layout) if len(picked) else []
        listed = zip(picked, sc[u][: len(picked)], rows, parts, strict=True)
        for pos, (j, s, item, (contrib, shares)) in enumerate(listed):
            because_idx = sentence = None
            if because_of is not None:
                because_idx, because, loved = because_of(int(j), item)
                sentence = explain(shares, item, layout, because, options.explain_min_share, loved)
            recs.append(Recommendation(pos + 1, int(j), float(s), float(users[u] @ item), contrib, shares,
                                       because_idx, sentence))
        out.append(recs)
    return out


def vector_recommender(item_ids: Sequence[str], items: np.ndarray, layout: FusionLayout, *,
                       user_config: UserVectorConfig | None = None,
                       options: RecommendOptions | None = None, now: float | None = None,
                       ingest_times: np.ndarray | None = None) -> Recommender:
    """The mmrec recommender as a function for `evaluate`: (train, users, k) -> ranked ids.

    User vectors come from the train rows only; `now` defaults to the latest train time.
    """
    opts = options or RecommendOptions(backend="numpy")
    index = {i: n for n, i in enumerate(item_ids)}

    def run(train: Sequence[Interaction], users: Sequence[str], k: int) -> dict[str, list[str]]:
        hist = histories_from_interactions(train, index)
        t_now = now if now is not None else max((r.timestamp for r in train), default=0.0)
        wanted = {u: hist[u] for u in users if u in hist}
        um = user_matrix(wanted, items, layout, t_now, user_config)
        if not um.user_ids:
            return {}
        idx, _ = rank(um.vectors, items, replace(opts, k=k), histories=[hist[u] for u in um.user_ids],
                      popularity=popularity_counts(hist, len(item_ids)), ingest_times=ingest_times,
                      now=t_now)
        return {u: [item_ids[j] for j in row if j >= 0] for u, row in zip(um.user_ids, idx, strict=True)}

    return run
