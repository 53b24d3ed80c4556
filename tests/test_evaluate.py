"""Evaluation: splits, hand-computed metrics, baselines, the report table."""

from __future__ import annotations

import math

import pytest

from mmrec.errors import ConfigError
from mmrec.recommend.evaluate import (
    Split,
    evaluate,
    f1_at_k,
    leave_last_out,
    ndcg_at_k,
    parse_holdout,
    popularity_baseline,
    precision_at_k,
    random_baseline,
    recall_at_k,
    reciprocal_rank,
    split,
    time_split,
)
from mmrec.recommend.interactions import Interaction


def row(user: str, item: str, t: float, event: str = "like", value: float | None = None) -> Interaction:
    return Interaction(user, item, event, value, t)


def test_metrics_on_a_hand_computed_ranking() -> None:
    ranked, relevant = ["a", "b", "c", "d"], {"b", "d", "x"}
    assert precision_at_k(ranked, relevant, 4) == 0.5
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert f1_at_k(ranked, relevant, 4) == pytest.approx(4 / 7)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(ranked, relevant, 4) == pytest.approx(0.49818, abs=1e-5)
    assert reciprocal_rank(ranked, relevant, 4) == 0.5
    # Cut at k = 2: one hit at rank 2.
    assert precision_at_k(ranked, relevant, 2) == 0.5
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranked, relevant, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert reciprocal_rank(["a", "c"], relevant, 2) == 0.0
    # A perfect list scores 1; duplicates count once; a short list is not rewarded.
    assert ndcg_at_k(["b", "d", "x"], relevant, 3) == pytest.approx(1.0)
    assert precision_at_k(["b", "b"], {"b"}, 2) == 0.5
    assert precision_at_k(["b"], {"b"}, 10) == 0.1
    assert f1_at_k([], {"b"}, 3) == 0.0 and recall_at_k(["b"], set(), 3) == 0.0


def test_leave_last_out_holds_out_the_latest_positive() -> None:
    rows = [row("u1", "a", 1), row("u1", "b", 2, "view", 0.9), row("u1", "c", 3, "skip"),
            row("u2", "a", 1, "dislike"), row("u3", "a", 1), row("u4", "a", 1),
            row("u4", "b", 2, "view", 0.2)]
    sp = leave_last_out(rows)
    assert sp.holdout == "last"
    assert sorted((r.user_id, r.item_id) for r in sp.test) == [("u1", "b"), ("u1", "c")]
    assert sorted((r.user_id, r.item_id) for r in sp.train) == [
        ("u1", "a"), ("u2", "a"), ("u3", "a"), ("u4", "a"), ("u4", "b")]  # u4's partial view is not positive


def test_time_split_and_holdout_parsing() -> None:
    rows = [row("u", str(i), float(i)) for i in range(1, 11)]
    sp = time_split(rows, 0.2)
    assert [r.timestamp for r in sp.test] == [9.0, 10.0] and len(sp.train) == 8
    tied = [row("u", "a", 1), row("u", "b", 2), row("u", "c", 3), row("v", "d", 3), row("w", "e", 3)]
    assert len(time_split(tied, 0.2).test) == 3  # a timestamp is never split across train and test
    assert parse_holdout("last") == "last" and parse_holdout(" LAST ") == "last"
    assert parse_holdout("0.2") == 0.2
    for bad in ("1.5", "0", "abc"):
        with pytest.raises(ConfigError):
            parse_holdout(bad)
    assert split(rows, "0.3").holdout == "0.3" and len(split(rows, 0.3).test) == 3
    assert time_split([], 0.5).test == []


# Two users: u1 liked a then c, u2 liked a, b then d. Leave-last-out tests c and d.
CATALOG = ["a", "b", "c", "d"]
ROWS = [row("u1", "a", 1), row("u2", "a", 1), row("u2", "b", 2), row("u1", "c", 3), row("u2", "d", 4)]


def fixed(lists: dict[str, list[str]]):
    def run(train, users, k):
        assert all(r.item_id not in ("c", "d") for r in train)  # nothing of the test leaks
        return {u: lists[u] for u in users}
    return run


def test_evaluate_table_by_hand() -> None:
    report = evaluate({"mmrec": fixed({"u1": ["c", "b"], "u2": ["b", "d"]})}, ROWS, CATALOG, k=2)
    assert [r.method for r in report.rows] == ["mmrec", "popularity", "random"]
    assert (report.users, report.train, report.test, report.catalog) == (2, 3, 2, 4)
    m = report.row("mmrec")
    assert (m.precision, m.recall, m.mrr) == (0.5, 1.0, 0.75)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.ndcg == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert m.coverage == 0.75
    # popularity share p = (positive users + 1) / (train users + 1): c, d -> 1/3, b -> 2/3.
    assert m.novelty == pytest.approx((2 * math.log2(3) + 2 * math.log2(3 / 2)) / 4)
    # Popularity ranks a (2 users), b (1), c, d: u1 gets [b, c], u2 gets [c, d].
    p = report.row("popularity")
    assert (p.precision, p.recall, p.mrr) == (0.5, 1.0, 0.5)
    assert p.ndcg == pytest.approx(1 / math.log2(3))
    assert p.coverage == 0.75
    assert set(report.to_json()) == {"k", "holdout", "users", "train", "test", "catalog", "methods"}
    assert report.to_json()["methods"][0]["method"] == "mmrec"
    with pytest.raises(KeyError, match="popularity"):
        report.row("nope")


def test_seen_items_leave_the_relevant_set_unless_included() -> None:
    rows = [*ROWS, row("u3", "a", 1), row("u3", "b", 2), row("u3", "a", 5)]
    oracle = fixed({"u1": ["c"], "u2": ["d"], "u3": ["a"]})
    assert evaluate({"o": oracle}, rows, CATALOG, k=1, baselines=False).users == 2
    report = evaluate({"o": oracle}, rows, CATALOG, k=1, baselines=False, exclude_seen=False)
    assert report.users == 3 and report.row("o").precision == 1.0
    assert [r.method for r in report.rows] == ["o"]


def test_baselines_exclude_seen_and_random_is_seeded() -> None:
    catalog = [f"i{n}" for n in range(50)]
    train = [row("u", "i0", 1), row("u", "i1", 2), row("v", "i0", 1)]
    pop = popularity_baseline(catalog)(train, ["u", "v", "w"], 3)
    assert pop == {"u": ["i2", "i3", "i4"], "v": ["i1", "i2", "i3"], "w": ["i0", "i1", "i2"]}
    r1 = random_baseline(catalog, seed=1)(train, ["u", "v"], 10)
    assert r1 == random_baseline(catalog, seed=1)(train, ["u", "v"], 10)
    assert r1 != random_baseline(catalog, seed=2)(train, ["u", "v"], 10)
    assert len(r1["u"]) == 10 and not {"i0", "i1"} & set(r1["u"]) and len(set(r1["u"])) == 10
    assert len(random_baseline(catalog[:3], seed=0)(train, ["u"], 10)["u"]) == 1  # only i2 is unseen


def test_evaluate_accepts_a_split_and_checks_k() -> None:
    sp = Split(train=ROWS[:3], test=ROWS[3:], holdout="custom")
    report = evaluate({"m": fixed({"u1": ["c"], "u2": ["d"]})}, sp, CATALOG, k=1)
    assert report.holdout == "custom" and report.row("m").precision == 1.0
    with pytest.raises(ConfigError):
        evaluate({}, ROWS, CATALOG, k=0)
