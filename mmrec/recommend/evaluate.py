"""Offline evaluation of recommenders on an interaction log, with baselines side by side.

Splits: leave-last-out (each user's latest positive interaction and everything after it
is the test set) or a global time split (the latest fraction of rows by timestamp).
Relevant items are a user's positive test items (like, share, comment, a view with no
fraction or >= 0.5; see interactions.is_positive), minus items already in their train
history when seen items are excluded. Only users with train history and at least one
relevant item are scored, the same users for every method.

Metrics (binary relevance, averaged over users): precision@k = hits / k,
recall@k = hits / |relevant|, F1@k per user, NDCG@k with a log2(rank + 1) discount,
MRR = 1 / rank of the first hit in the top k (0 if none); catalog coverage = distinct
recommended items / catalog size; novelty = mean -log2 p_i over recommended items with
p_i = (train users with a positive event on i + 1) / (train users + 1).

`sentiment_variants` names the mmrec rows for comment sentiment on, off, or both side by
side ("compare": rows "mmrec" and "mmrec-no-sentiment" on the same split and users).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from mmrec.errors import ConfigError
from mmrec.recommend.interactions import Interaction, by_user, is_positive
from mmrec.recommend.users import UserVectorConfig

# (train rows, users to recommend for, k) -> user id -> ranked item ids (best first).
Recommender = Callable[[Sequence[Interaction], Sequence[str], int], Mapping[str, Sequence[str]]]

SENTIMENT_MODES = ("on", "off", "compare")
NO_SENTIMENT = "mmrec-no-sentiment"  # the method name of the sentiment-off row in "compare"


def sentiment_variants(mode: str, config: UserVectorConfig | None = None) -> dict[str, UserVectorConfig]:
    """Method name -> user-vector config for comment sentiment "on", "off" or "compare" (both)."""
    if mode not in SENTIMENT_MODES:
        raise ConfigError(f"bad sentiment mode {mode!r}: use one of {', '.join(SENTIMENT_MODES)}")
    base = config or UserVectorConfig()
    on, off = replace(base, sentiment=True), replace(base, sentiment=False)
    return {"on": {"mmrec": on}, "off": {"mmrec": off}, "compare": {"mmrec": on, NO_SENTIMENT: off}}[mode]


@dataclass(frozen=True)
class Split:
    """Train and test rows and the holdout that made them ("last" or "0.2")."""

    train: list[Interaction]
    test: list[Interaction]
    holdout: str


def leave_last_out(rows: Sequence[Interaction]) -> Split:
    """Per user, the latest positive interaction and all later rows go to test.

    A user with no positive row, or whose only positive row is their first, stays in train.
    """
    train: list[Interaction] = []
    test: list[Interaction] = []
    for rs in by_user(rows).values():
        pos = [i for i, r in enumerate(rs) if is_positive(r.event, r.value)]
        cut = pos[-1] if pos else 0
        train += rs[:cut] if cut else rs
        test += rs[cut:] if cut else []
    return Split(train, test, "last")


def time_split(rows: Sequence[Interaction], test_fraction: float = 0.2) -> Split:
    """Rows at or after the timestamp that starts the latest `test_fraction` go to test."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"holdout fraction must be in (0, 1); got {test_fraction}")
    ordered = sorted(rows, key=lambda r: (r.timestamp, r.line))
    if not ordered:
        return Split([], [], str(test_fraction))
    cut = min(len(ordered) - 1, max(0, len(ordered) - max(1, round(test_fraction * len(ordered)))))
    cutoff = ordered[cut].timestamp
    return Split([r for r in ordered if r.timestamp < cutoff],
                 [r for r in ordered if r.timestamp >= cutoff], str(test_fraction))


def parse_holdout(text: str | float) -> str | float:
    """'last' or a fraction in (0, 1) such as '0.2'; ConfigError otherwise."""
    if isinstance(text, str) and text.strip().lower() == "last":
        return "last"
    try:
        f = float(text)
    except ValueError as e:
        raise ConfigError(f"bad holdout {text!r}: use 'last' or a fraction such as 0.2") from e
    if not 0.0 < f < 1.0:
        raise ConfigError(f"bad holdout {text!r}: a fraction must be in (0, 1)")
    return f


def split(rows: Sequence[Interaction], holdout: str | float = "last") -> Split:
    """Leave-last-out for 'last', else a time split holding out that fraction."""
    h = parse_holdout(holdout)
    return leave_last_out(rows) if h == "last" else time_split(rows, float(h))


# -- per-user metrics (binary relevance; duplicates in a list count once) ----------------

def _hits(ranked: Sequence[str], relevant: set[str], k: int) -> list[bool]:
    seen: set[str] = set()
    out = []
    for x in ranked[:k]:
        out.append(x in relevant and x not in seen)
        seen.add(x)
    return out


def precision_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Hits in the top k divided by k (a short list is not rewarded)."""
    return sum(_hits(ranked, relevant, k)) / k


def recall_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Hits in the top k divided by the number of relevant items (0 when there are none)."""
    return sum(_hits(ranked, relevant, k)) / len(relevant) if relevant else 0.0


def f1_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Harmonic mean of precision@k and recall@k for one user."""
    p, r = precision_at_k(ranked, relevant, k), recall_at_k(ranked, relevant, k)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """DCG / ideal DCG with gain 1 per hit and discount 1 / log2(rank + 1)."""
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(_hits(ranked, relevant, k)) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal if ideal > 0 else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """1 / rank of the first relevant item in the top k, 0 when none is there."""
    return next((1.0 / (i + 1) for i, hit in enumerate(_hits(ranked, relevant, k)) if hit), 0.0)


METRICS: dict[str, Callable[[Sequence[str], set[str], int], float]] = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "f1": f1_at_k,
    "ndcg": ndcg_at_k,
    "mrr": reciprocal_rank,
}


@dataclass(frozen=True)
class MethodMetrics:
    """One row of the evaluation table: a method's metrics averaged over the users."""

    method: str
    precision: float
    recall: float
    f1: float
    ndcg: float
    mrr: float
    coverage: float
    novelty: float
    users: int


@dataclass(frozen=True)
class EvalReport:
    """The evaluation table (one row per method) and the sizes it was computed on."""

    k: int
    holdout: str
    rows: list[MethodMetrics]
    users: int
    train: int
    test: int
    catalog: int

    def row(self, method: str) -> MethodMetrics:
        """The row of one method; KeyError names the known ones."""
        for r in self.rows:
            if r.method == method:
                return r
        raise KeyError(f"no method {method!r}; have {', '.join(r.method for r in self.rows)}")

    def to_json(self) -> dict[str, object]:
        return {"k": self.k, "holdout": self.holdout, "users": self.users, "train": self.train,
                "test": self.test, "catalog": self.catalog, "methods": [asdict(r) for r in self.rows]}


def _positive_users(rows: Sequence[Interaction]) -> dict[str, int]:
    """Item id -> number of distinct users with a positive event on it."""
    pairs = {(r.user_id, r.item_id) for r in rows if is_positive(r.event, r.value)}
    counts: dict[str, int] = {}
    for _, item in pairs:
        counts[item] = counts.get(item, 0) + 1
    return counts


def popularity_baseline(catalog: Sequence[str], exclude_seen: bool = True) -> Recommender:
    """Most popular items first (distinct users with a positive train event; catalog order on ties)."""
    def run(train: Sequence[Interaction], users: Sequence[str], k: int) -> dict[str, list[str]]:
        counts = _positive_users(train)
        order = sorted(range(len(catalog)), key=lambda i: (-counts.get(catalog[i], 0), i))
        ranked = [catalog[i] for i in order]
        seen = _seen(train) if exclude_seen else {}
        return {u: [x for x in ranked if x not in seen.get(u, ())][:k] for u in users}
    return run


def random_baseline(catalog: Sequence[str], seed: int = 0, exclude_seen: bool = True) -> Recommender:
    """Uniformly random unseen items, reproducible for a given seed and user list."""
    def run(train: Sequence[Interaction], users: Sequence[str], k: int) -> dict[str, list[str]]:
        rng = np.random.default_rng(seed)
        seen = _seen(train) if exclude_seen else {}
        out: dict[str, list[str]] = {}
        for u in users:
            s = seen.get(u, set())
            take = min(len(catalog), k + len(s))
            picks = rng.choice(len(catalog), size=take, replace=False)
            out[u] = [catalog[i] for i in picks if catalog[i] not in s][:k]
        return out
    return run


def _seen(rows: Sequence[Interaction]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in rows:
        out.setdefault(r.user_id, set()).add(r.item_id)
    return out


def evaluate(
    recommenders: Mapping[str, Recommender],
    rows: Sequence[Interaction] | Split,
    catalog: Sequence[str],
    *,
    k: int = 10,
    holdout: str | float = "last",
    exclude_seen: bool = True,
    baselines: bool = True,
    seed: int = 0,
) -> EvalReport:
    """Score each recommender (and the popularity and random baselines) on a held-out split.

    Args:
        recommenders: name -> function (train rows, user ids, k) -> ranked item ids per
            user (e.g. ranker.vector_recommender(...)); lists are cut to k.
        rows: all interactions (split here by `holdout`) or a ready Split.
        catalog: every item id that can be recommended (for coverage and the baselines).
        k: list length.
        holdout: "last" (leave-last-out) or a fraction (time split), ignored for a Split.
        exclude_seen: drop train items from the relevant sets and from the baselines.
        baselines: add "popularity" and "random" rows.
        seed: random baseline seed.

    Returns:
        EvalReport with one MethodMetrics row per method, in the order given, baselines last.
    """
    if k <= 0:
        raise ConfigError(f"k must be positive; got {k}")
    sp = rows if isinstance(rows, Split) else split(rows, holdout)
    seen = _seen(sp.train)
    relevant: dict[str, set[str]] = {}
    for r in sp.test:
        if r.user_id in seen and is_positive(r.event, r.value):
            if not (exclude_seen and r.item_id in seen[r.user_id]):
                relevant.setdefault(r.user_id, set()).add(r.item_id)
    users = sorted(relevant)
    methods = dict(recommenders)
    if baselines:
        methods.setdefault("popularity", popularity_baseline(catalog, exclude_seen))
        methods.setdefault("random", random_baseline(catalog, seed, exclude_seen))
    counts = _positive_users(sp.train)
    n_train_users = len(seen)
    table = []
    for name, fn in methods.items():
        lists = fn(sp.train, users, k) if users else {}
        per_user = {m: [f(list(lists.get(u, ()))[:k], relevant[u], k) for u in users]
                    for m, f in METRICS.items()}
        recommended = [x for u in users for x in list(lists.get(u, ()))[:k]]
        novelty = [-math.log2((counts.get(x, 0) + 1) / (n_train_users + 1)) for x in recommended]
        means = {m: float(np.mean(v)) if users else 0.0 for m, v in per_user.items()}
        table.append(MethodMetrics(
            name, **means,
            coverage=len(set(recommended)) / len(catalog) if catalog else 0.0,
            novelty=float(np.mean(novelty)) if novelty else 0.0, users=len(users)))
    return EvalReport(k, sp.holdout, table, len(users), len(sp.train), len(sp.test), len(catalog))
