"""Recommending from a catalog searched through its ANN index: candidates from the index,
then the same ranking, reranking and explanations as over the whole catalog."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import mmrec.search.index
from mmrec.catalog.store import CatalogStore, ItemRecord
from mmrec.fusion import FusionLayout
from mmrec.recommend.from_catalog import import_interactions, recommend_for_user
from mmrec.recommend.ranker import RecommendOptions
from mmrec.recommend.rerank import RerankConfig
from mmrec.search.index import build_indexes

N = 2000
DIMS = (("visual", 48), ("text", 32))


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CatalogStore:
    """Items around 30 topics; users who watched a few items of two topics, some liked
    by many users (popularity), ingested over two months (freshness)."""
    rng = np.random.default_rng(3)
    tmp = tmp_path_factory.mktemp("two-stage")
    layout = FusionLayout.from_dims([(m, f"synthetic-{m}", d) for m, d in DIMS])
    s = CatalogStore.create(tmp / "cat.lance", layout, {"preset": "synthetic"})
    topic = rng.integers(0, 30, N)
    vecs = {}
    for m, d in DIMS:
        c = rng.standard_normal((30, d))
        v = c[topic] + 0.7 * rng.standard_normal((N, d))
        vecs[m] = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    items = []
    for i in range(N):
        vv = {m: vecs[m][i] for m, _ in DIMS}
        items.append(ItemRecord(id=f"item{i:05d}", path=f"/lib/{i}.mp4", size=i, mtime=0.0, duration=60.0,
                                kind="video", title=f"t{i}", text="", tags=[], vectors=vv,
                                fused=layout.fuse(vv), fingerprints={}))
    s.write(items, [])
    path = tmp / "interactions.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user_id", "item", "event", "value", "timestamp"])
        for u in range(12):
            likes = rng.choice(np.flatnonzero(np.isin(topic, [u % 30, (u * 7) % 30])), 6, replace=False)
            for day, i in enumerate(likes, start=1):
                w.writerow([f"user{u}", f"item{i:05d}", "like", "", f"2026-10-{day:02d}T10:00:00Z"])
        for u in range(12, 40):  # a popular handful
            for i in (5, 77, 1234):
                w.writerow([f"user{u}", f"item{i:05d}", "view", "", "2026-10-20T10:00:00Z"])
    assert import_interactions(s, path).imported > 0
    build_indexes(s)
    return s


@pytest.mark.parametrize("rerank", [RerankConfig(), RerankConfig(popularity_weight=0.3, diversity=0.3)])
def test_candidates_from_the_index_give_the_whole_catalog_answer(store, monkeypatch, rerank):
    opts = RecommendOptions(k=10, explain=True, rerank=rerank)
    now = 1.79e9
    for user in ("user0", "user5", "user11"):
        whole = recommend_for_user(store, opts, user=user, now=now)
        assert len(whole.items.ids) == N  # 2,000 rows: below the ANN threshold, read whole
        monkeypatch.setattr(mmrec.search.index, "EXACT_SEARCH_BELOW", 0)
        two = recommend_for_user(store, opts, user=user, now=now)
        monkeypatch.undo()
        assert len(two.items.ids) < N / 4  # only the history and the index's candidates
        a, b = whole.to_json(), two.to_json()
        assert len(b) == 10
        overlap = len({r["item_id"] for r in a} & {r["item_id"] for r in b}) / 10
        assert overlap >= 0.9, (user, overlap)
        same = {r["item_id"]: r for r in a}
        for r in b:  # shared items: same score (popularity scaled as for the whole catalog)
            if r["item_id"] in same:
                assert r["score"] == pytest.approx(same[r["item_id"]]["score"], abs=1e-5)
                assert r["because"] == same[r["item_id"]]["because"]
        history = {r["item_id"] for r in store.interactions() if r["user_id"] == user}
        assert len(history) == 6 and not history & {r["item_id"] for r in b}  # seen items stay out
        assert all(r["because"]["item_id"] in history for r in b)


def test_cold_start_interests_vector_also_uses_candidates(store, monkeypatch):
    monkeypatch.setattr(mmrec.search.index, "EXACT_SEARCH_BELOW", 0)
    layout = store.layout
    q = np.zeros(layout.dim, np.float32)
    q[: DIMS[0][1]] = 1 / np.sqrt(DIMS[0][1])

    def encode(texts):  # a fixed "text tower" output for the interests
        return {"text": np.tile(q[layout.dim - DIMS[1][1]:] + 1.0, (len(texts), 1))}

    recs = recommend_for_user(store, RecommendOptions(k=5), interests="jazz, hiking", encode=encode)
    assert len(recs.recommendations) == 5 and len(recs.items.ids) < N / 4


def test_filtered_interaction_reads_and_the_arrow_popularity_count(store):
    from mmrec.recommend.from_catalog import popularity_top, stored_interactions
    from mmrec.recommend.ranker import histories_from_interactions, popularity_counts

    rows = store.interactions()
    keys = lambda rs: sorted(r["key"] for r in rs)  # noqa: E731
    assert keys(store.interactions(user="user3")) == keys(r for r in rows if r["user_id"] == "user3")
    few = ["item00005", "item01234", "item00002"]
    assert keys(store.interactions(items=few)) == keys(r for r in rows if r["item_id"] in few)
    both = store.interactions(user="user20", items=few)
    assert keys(both) == keys(r for r in rows if r["user_id"] == "user20" and r["item_id"] in few)
    assert len(both) == 2 and store.interactions(items=[]) == []
    assert store.interactions(user="o'brien") == []  # quoted, not an SQL error
    everything = stored_interactions(store)
    index = {i: n for n, i in enumerate(dict.fromkeys(r.item_id for r in everything))}
    want = popularity_counts(histories_from_interactions(everything, index), len(index)).max()
    assert popularity_top(store) == want == 28  # the three items viewed by users 12-39


def _three_items(tmp_path) -> CatalogStore:
    """A catalog of items i0, i1, i2 with one 4-dim text vector each."""
    layout = FusionLayout.from_dims([("text", "synthetic-text", 4)])
    s = CatalogStore.create(tmp_path / "c.lance", layout, {"preset": "synthetic"})
    v = {"text": np.array([1, 0, 0, 0], np.float32)}
    s.write([ItemRecord(id=f"i{n}", path=f"/l/{n}.mp4", size=n, mtime=0.0, duration=1.0, kind="video",
                        title="", text="", tags=[], vectors=v, fused=layout.fuse(v), fingerprints={})
             for n in range(3)], [])
    return s


def test_popularity_top_is_kept_until_interactions_are_added(tmp_path, monkeypatch):
    from mmrec.recommend import from_catalog as recommending
    from mmrec.recommend.from_catalog import POPULARITY_TOP, popularity_top

    s = _three_items(tmp_path)
    assert popularity_top(s) == 0.0  # no interactions table yet
    path = tmp_path / "i.csv"
    path.write_text("user_id,item,event,value,timestamp\n" + "".join(
        f"u{u},i{u % 2},like,,2026-10-0{u + 1}T10:00:00Z\n" for u in range(5)))
    import_interactions(s, path)
    kept = s.meta()[POPULARITY_TOP]
    assert kept == {"rows": 5, "count": 3} and popularity_top(s) == 3
    build_indexes(s)  # a new table version, the same rows: the kept count still serves
    with monkeypatch.context() as m:
        m.setattr(recommending, "count_popularity_top", lambda store: pytest.fail("counted again"))
        assert s.interaction_rows() == 5 and popularity_top(s) == 3
    s.add_interactions([{"key": f"k{u}", "user_id": f"w{u}", "item_id": "i2", "event": "view", "value": 0.9,
                         "timestamp": 1.7e9, "text": None, "source": "test"} for u in range(4)])
    assert s.meta()[POPULARITY_TOP] == kept  # written behind the import's back: stale...
    assert popularity_top(s) == 4  # ...so counted afresh


def test_live_events_keep_the_popularity_count_without_a_recount(tmp_path, monkeypatch):
    """The service records events one by one: each raises the kept top count from the items
    it touched, so the next recommendation does not scan every interaction again."""
    from mmrec.recommend import from_catalog as recommending
    from mmrec.recommend.from_catalog import count_popularity_top, popularity_top, record_events

    s = _three_items(tmp_path)
    path = tmp_path / "i.csv"
    path.write_text("user_id,item,event,value,timestamp\n" + "".join(
        f"u{u},i{u % 2},like,,2026-10-0{u + 1}T10:00:00Z\n" for u in range(5)))
    import_interactions(s, path)
    assert popularity_top(s) == 3  # i0: u0, u2, u4
    events = [{"user_id": f"w{u}", "item": "i2", "event": "like", "timestamp": 1.7e9 + u} for u in range(4)]
    with monkeypatch.context() as m:
        m.setattr(recommending, "count_popularity_top", lambda store: pytest.fail("counted again"))
        for e in events[:3]:
            record_events(s, [e])
        assert popularity_top(s) == 3  # i2 has 3 users: a tie
        record_events(s, [events[3], {"user_id": "w0", "item": "i0", "event": "skip", "timestamp": 1.8e9}])
        assert popularity_top(s) == 4
    assert count_popularity_top(s) == 4  # the same as a full count
    s.add_interactions([{"key": f"x{u}", "user_id": f"x{u}", "item_id": "i1", "event": "like", "value": None,
                         "timestamp": 1.9e9, "text": None, "source": "other process"} for u in range(5)])
    assert popularity_top(s) == count_popularity_top(s) == 7  # rows it did not record: counted afresh


def test_candidates_from_a_resident_copy_are_sliced_from_it(store, monkeypatch):
    """A long-lived reader's copy gives the candidates as array slices, reading no item table,
    and the list is the whole catalog's (its candidates are the exact nearest under 20k rows)."""
    import mmrec.recommend.from_catalog as from_catalog
    from mmrec.catalog import keep_resident

    opts = RecommendOptions(k=10, explain=True, rerank=RerankConfig(popularity_weight=0.3, diversity=0.3))
    now = 1.79e9
    whole = {u: recommend_for_user(store, opts, user=u, now=now).to_json() for u in ("user0", "user7")}
    reader = CatalogStore.open(store.path)
    keep_resident(reader, poll_s=3600)
    monkeypatch.setattr(from_catalog, "EXACT_SEARCH_BELOW", 0)

    def refuse(*a, **kw):
        raise AssertionError("the item table was read")
    monkeypatch.setattr(reader.items, "search", refuse)
    monkeypatch.setattr(reader.items, "to_lance", refuse)
    for user, want in whole.items():
        got = recommend_for_user(reader, opts, user=user, now=now)
        assert len(got.items.ids) < N / 4
        assert [r["item_id"] for r in got.to_json()] == [r["item_id"] for r in want]
        for a, b in zip(got.to_json(), want, strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5) and a["because"] == b["because"]
            assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)
