"""Search-breadth calibration: the exact pass it trusts, the ladder walk, and that searches
use the breadth `mmrec index` measured (and fall back for indexes built before)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mmrec.catalog.store import CatalogStore, ItemRecord
from mmrec.fusion import FusionLayout
from mmrec.search import calibration
from mmrec.search.calibration import calibrate, exact_neighbours
from mmrec.search.index import INDEX_KINDS, build_indexes, search_ef, search_kind

N, DIM = 2500, 48


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CatalogStore:
    rng = np.random.default_rng(11)
    layout = FusionLayout.from_dims([("visual", "synthetic-visual", DIM)])
    s = CatalogStore.create(tmp_path_factory.mktemp("cal") / "cat.lance", layout, {"preset": "synthetic"})
    centres = rng.standard_normal((30, DIM))
    x = centres[rng.integers(0, 30, N)] + rng.standard_normal((N, DIM))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    items = [ItemRecord(id=f"i{i:05d}", path=f"/lib/{i}.mp4", size=i, mtime=0.0, duration=5.0,
                        kind="video", title="", text="", tags=[], vectors={"visual": x[i]},
                        fused=layout.fuse({"visual": x[i]}), fingerprints={}) for i in range(N)]
    for k in range(0, N, 1000):  # several fragments: row ids are not positions
        s.write(items[k:k + 1000], [])
    return s


def _fused(store: CatalogStore) -> tuple[np.ndarray, np.ndarray]:
    t = store.items.search().select(["fused"]).with_row_id(True).limit(None).to_arrow()
    return (np.asarray(t.column("fused").to_pylist(), np.float32),
            t.column("_rowid").to_numpy().astype(np.int64))


def test_exact_neighbours_streams_batches_into_the_true_top_k(store, monkeypatch):
    monkeypatch.setattr(calibration, "SCAN_BATCH", 333)  # many batches, a ragged last one
    x, rowids = _fused(store)
    q = np.random.default_rng(3).standard_normal((7, x.shape[1])).astype(np.float32)
    got = exact_neighbours(store.items, "fused", q, 12)
    want = rowids[np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :12]]
    assert got.shape == (7, 12)
    np.testing.assert_array_equal(got, want)


def test_calibration_stops_at_the_first_breadth_that_reaches_the_target(store):
    build_indexes(store)
    kind = INDEX_KINDS["hnsw"]
    cal = calibrate(store.items, "fused", kind, store.layout, sample=40)
    assert cal.queries == 40
    for b in (cal.near, cal.far):
        assert b.value in kind.ladder and list(b.tried) == sorted(b.tried)
        assert b.recall == b.tried[b.value] >= calibration.TARGET_RECALL
        assert all(r < calibration.TARGET_RECALL for v, r in b.tried.items() if v != b.value)
    assert list(cal.near.tried) == list(kind.ladder[:len(cal.near.tried)])
    assert min(cal.far.tried) == cal.near.value  # off-item queries start where stored ones stopped


def test_off_item_queries_are_unit_per_block_and_far_from_every_item(store):
    from mmrec.search.calibration import off_item_queries

    q = off_item_queries(store.layout, 20, seed=5)
    assert q.shape == (20, DIM)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, rtol=1e-5)
    x, _ = _fused(store)
    best_far = (q @ x.T).max(axis=1)
    best_near = np.sort(x[:20] @ x.T, axis=1)[:, -2]  # an item's nearest other item
    assert np.median(best_far) < np.median(best_near)


def test_unreachable_target_walks_the_whole_ladder_and_says_so(store, caplog):
    build_indexes(store)
    kind = INDEX_KINDS["hnsw"]
    short = kind.__class__(**{**kind.__dict__, "ladder": (200, 300)})
    with caplog.at_level(logging.WARNING, logger="mmrec.search.calibration"):
        cal = calibrate(store.items, "fused", short, store.layout, sample=10, target=1.01)
    assert list(cal.near.tried) == [200, 300] and cal.near.value == 300 and cal.far.value == 300
    assert "widest search" in caplog.text


def test_searches_use_the_calibrated_breadth(store):
    reports = build_indexes(store)
    items = next(r for r in reports if r.table == "items")
    assert items.breadth in INDEX_KINDS["hnsw"].ladder and items.recall >= calibration.TARGET_RECALL
    assert items.far_breadth >= items.breadth
    assert search_kind(store, store.items, False, near=True).ef == items.breadth
    assert search_kind(store, store.items, False).ef == items.far_breadth
    # An index from before calibration: its breadth comes from the size rule.
    meta = store.meta()["index"]
    store.set_meta({"index": {**meta, "tables": [{k: v for k, v in t.items() if "breadth" not in k}
                                                 for t in meta["tables"]]}})
    assert search_kind(store, store.items, False).ef == search_ef(INDEX_KINDS["hnsw"], N)
    build_indexes(store)


def test_calibrate_only_measures_a_kept_index_again(store):
    from click.testing import CliRunner

    from mmrec.cli import main

    build_indexes(store)
    meta = store.meta()["index"]
    store.set_meta({"index": {"kind": "hnsw"}})  # as an index from before calibration
    assert search_kind(store, store.items, False).ef == search_ef(INDEX_KINDS["hnsw"], N)
    version = store.items.version
    res = CliRunner().invoke(main, ["index", "--calibrate-only", "--db", str(store.path)])
    assert res.exit_code == 0, res.output
    assert "items: hnsw index on fused" in res.output and "search breadth" in res.output
    assert store.items.version == version  # read, not rebuilt
    again = store.meta()["index"]["tables"][0]
    assert search_kind(store, store.items, False).ef == again["far_breadth"]
    before = meta["tables"][0]
    assert (again["breadth"], again["far_breadth"]) == (before["breadth"], before["far_breadth"])


def test_calibrate_only_without_an_index_says_what_to_run(tmp_path):
    from mmrec.errors import ConfigError
    from mmrec.search.index import calibrate_indexes

    layout = FusionLayout.from_dims([("visual", "synthetic-visual", 8)])
    s = CatalogStore.create(tmp_path / "c.lance", layout, {"preset": "synthetic"})
    with pytest.raises(ConfigError, match="run `mmrec index` first"):
        calibrate_indexes(s)


def test_search_by_item_uses_the_stored_vector_breadth_and_others_the_far_one(store, monkeypatch):
    from mmrec.search import nearest as search

    meta = store.meta()["index"]  # the graph serves off-item queries (the sketch: test_sketch.py)
    store.set_meta({"index": {**meta, "tables": [{**t, "far_route": "graph"} for t in meta["tables"]]}})
    seen = []
    real = search.search_kind
    monkeypatch.setattr(search, "search_kind", lambda *a: seen.append(a[3]) or real(*a))
    x, _ = _fused(store)
    search.nearest_items(store, x[0], 5, exclude=("i00000",), with_segments=False, exact=False)
    search.nearest_items(store, x[0], 5, with_segments=False, exact=False)
    search.nearest_ids(store, x[0], 5, exact=False)
    assert seen == [True, False, False]
