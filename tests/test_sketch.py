"""The compressed scan for off-item queries: its basis, its candidates on low-rank and on
near-isotropic data, how `mmrec index` keeps or drops it, and that search uses it only
while its table is unchanged."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from mmrec.catalog.store import CatalogStore, ItemRecord
from mmrec.fusion import FusionLayout
from mmrec.search import calibration, sketch
from mmrec.search.calibration import Breadth, Calibration, off_item_queries
from mmrec.search.index import build_indexes, far_sketch, vector_index_status

N, DIM, RANK = 3000, 96, 12


def _low_rank(rng: np.random.Generator, n: int, dim: int = DIM, rank: int = RANK) -> np.ndarray:
    """Unit vectors near a rank-`rank` subspace, as learned embeddings are."""
    x = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, dim))
    x += 0.02 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _item(layout: FusionLayout, i: int, v: np.ndarray) -> ItemRecord:
    return ItemRecord(id=f"i{i:05d}", path=f"/lib/{i}.mp4", size=i, mtime=0.0, duration=5.0,
                      kind="video", title=f"item {i}", text="", tags=[], vectors={"visual": v},
                      fused=layout.fuse({"visual": v}), fingerprints={})


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sketch") / "cat.lance"
    layout = FusionLayout.from_dims([("visual", "synthetic-visual", DIM)])
    s = CatalogStore.create(path, layout, {"preset": "synthetic"})
    x = _low_rank(np.random.default_rng(4), N)
    items = [_item(layout, i, x[i]) for i in range(N)]
    for k in range(0, N, 1000):  # several fragments: row ids are not positions
        s.write(items[k:k + 1000], [])
    return path


@pytest.fixture()
def store(catalog, tmp_path) -> CatalogStore:
    """A copy of the catalog each test may index and write to."""
    shutil.copytree(catalog, tmp_path / "cat.lance")
    return CatalogStore.open(tmp_path / "cat.lance")


def _exact(store: CatalogStore, q: np.ndarray, k: int) -> list[str]:
    t = store.items.search().select(["id", "fused"]).limit(None).to_arrow()
    scores = np.asarray(t.column("fused").to_pylist(), np.float32) @ q
    return [t.column("id")[int(i)].as_py() for i in np.argsort(-scores, kind="stable")[:k]]


def _route(monkeypatch, route: str) -> None:
    """Which route calibration picks: its rule is timing-dependent (tested on its own below)."""
    monkeypatch.setattr(Calibration, "far_route", property(lambda self: route))


def test_basis_keeps_the_fewest_directions_that_explain_the_variance():
    rng = np.random.default_rng(0)
    basis = sketch.fit_basis(_low_rank(rng, 2000))
    assert basis.shape == (DIM, 16)  # rank 12, rounded up to a whole DIM_STEP
    np.testing.assert_allclose(basis.T @ basis, np.eye(16), atol=1e-4)
    iso = rng.standard_normal((2000, 200)).astype(np.float32)
    assert sketch.fit_basis(iso).shape == (200, sketch.MAX_DIMS)  # no low-rank structure: the cap


def test_rescoring_every_row_is_exact_and_rows_look_like_an_index_search(store):
    sk = sketch.build_sketch(store.items, "fused", store.path)
    assert sk.coords.shape == (N, 16) and sk.q8.shape == (N, DIM) and len(np.unique(sk.rowids)) == N
    x = np.asarray(store.items.take_row_ids(sk.rowids[:50].tolist()).to_arrow().column("fused").to_pylist())
    np.testing.assert_allclose(sk.q8[:50] * sk.scale[:50, None], x, atol=0.5 / 127)  # rows in rowids order
    q = off_item_queries(store.layout, 1, seed=3)[0]
    rows = sketch.search_rows(store.items, "fused", sk, q, 10, N, ["id", "title", "_distance"])
    assert [r["id"] for r in rows] == _exact(store, q, 10)
    for r in rows:
        assert r["_distance"] == pytest.approx(1.0 - float(np.dot(r["fused"], q)), abs=1e-5)
        assert r["title"] == f"item {int(r['id'][1:])}"
    every = sketch.search_rows(store.items, "fused", sk, q, 3, 50)  # columns None: all of them
    assert set(store.items.schema.names) <= set(every[0]) and [r["id"] for r in every] == _exact(store, q, 3)


def test_few_candidates_find_the_true_neighbours_of_far_queries_on_low_rank_data(store):
    sk = sketch.build_sketch(store.items, "fused", store.path)
    recall = [len({r["id"] for r in sketch.search_rows(store.items, "fused", sk, q, 10, 100, ["id"])}
                  & set(_exact(store, q, 10))) / 10
              for q in off_item_queries(store.layout, 20, seed=9)]
    assert np.mean(recall) >= 0.95  # 100 of 3,000 rows re-scored


def test_sign_bits_find_far_neighbours_that_the_principal_directions_miss(tmp_path):
    """Near-isotropic vectors: 64 principal directions carry ~30% of the variance, so the
    shortlist must come mostly from the rotated residual's sign bits."""
    dim, n = 256, 4000
    layout = FusionLayout.from_dims([("visual", "synthetic-visual", dim)])
    s = CatalogStore.create(tmp_path / "iso.lance", layout, {"preset": "synthetic"})
    rng = np.random.default_rng(8)
    x = rng.standard_normal((20, dim))[rng.integers(0, 20, n)] + rng.standard_normal((n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    s.write([_item(layout, i, x[i]) for i in range(n)], [])
    sk = sketch.build_sketch(s.items, "fused", s.path)
    assert sk.dims == sketch.MAX_DIMS
    x_sk = x[sk.rowids]  # one fragment: row id = position
    queries = off_item_queries(layout, 30, seed=5)
    truth = [set(np.argsort(-(x_sk @ q))[:10].tolist()) for q in queries]
    no_bits = replace(sk, fac=np.zeros_like(sk.fac))  # the principal part alone

    def recall(k: sketch.Sketch) -> float:
        return float(np.mean([len(set(k.shortlist(q, 100).tolist()) & t) / 10
                              for q, t in zip(queries, truth, strict=True)]))

    with_bits, without = recall(sk), recall(no_bits)
    assert with_bits >= 0.95 and with_bits >= without + 0.2, (with_bits, without)  # 0.99 vs 0.70
    sketch.discard(sk)
    assert not sk.directory.exists()


def test_far_route_prefers_recall_under_the_target_and_speed_above_it():
    def b(recall: float, ms: float) -> Breadth:
        return Breadth(1, recall, {1: recall}, ms)

    def route(far: Breadth, sk: Breadth | None) -> str:
        return Calibration(b(1.0, 1.0), far, 10, 0.0, sk).far_route

    target = calibration.TARGET_RECALL
    assert route(b(target, 60.0), None) == "graph"
    assert route(b(target, 60.0), b(0.99, 10.0)) == "sketch"  # both reach it: the faster
    assert route(b(0.99, 10.0), b(target, 60.0)) == "graph"
    assert route(b(0.85, 70.0), b(0.90, 90.0)) == "sketch"  # neither: the better recall
    assert route(b(0.85, 70.0), b(0.02, 5.0)) == "graph"


def test_index_keeps_the_chosen_sketch_and_search_uses_it_while_the_table_is_unchanged(store, monkeypatch):
    from mmrec.search import nearest as search

    _route(monkeypatch, "sketch")
    items = next(r for r in build_indexes(store) if r.table == "items")
    assert items.far_route == "sketch" and items.sketch_dims == 16
    assert items.sketch_rerank in sketch.RERANK_LADDER and items.sketch_version == store.items.version
    assert sketch.exists(store.path, "items")
    assert [p.name for p in (store.path / sketch.DIRECTORY).iterdir()] == ["items"]  # no build left over
    queries = off_item_queries(store.layout, 10, seed=21)
    sketch._LOADED.clear()  # as a new process: read back from the catalog
    assert far_sketch(store, store.items, exact=False) is not None
    assert far_sketch(store, store.items, exact=True) is None
    assert far_sketch(store, store.items, exact=None) is None  # under 20,000 rows: exact scan
    assert vector_index_status(store)["items"]["far_route"] == "sketch"
    used = []
    real = sketch.search_rows
    monkeypatch.setattr(sketch, "search_rows", lambda *a, **kw: used.append(1) or real(*a, **kw))
    recall = [len({h.item_id for h in search.nearest_items(store, q, 10, with_segments=False, exact=False)}
                  & set(_exact(store, q, 10))) / 10 for q in queries]
    assert len(used) == len(queries) and np.mean(recall) >= 0.95
    # filtered queries and searches by item go to the index
    search.nearest_items(store, queries[0], 5, where="size > 10", with_segments=False, exact=False)
    search.nearest_items(store, queries[0], 5, exclude=("i00001",), with_segments=False, exact=False)
    assert len(used) == len(queries)
    # a write makes the sketch stale: search falls back to the graph and finds the new row
    new = _low_rank(np.random.default_rng(99), 1)[0]
    store.write([_item(store.layout, N, new)], [])
    assert far_sketch(store, store.items, exact=False) is None
    assert "sketch stale" in vector_index_status(store)["items"]["far_route"]
    hits = search.nearest_items(store, new, 3, with_segments=False, exact=False)
    assert hits[0].item_id == f"i{N:05d}" and len(used) == len(queries)


def test_index_drops_a_sketch_the_graph_beat(store, monkeypatch):
    _route(monkeypatch, "sketch")
    build_indexes(store)
    assert sketch.exists(store.path, "items")
    store.db.create_table("items_sketch", pa.table({"row": [1]}))  # where an older mmrec kept one
    _route(monkeypatch, "graph")
    items = next(r for r in build_indexes(store) if r.table == "items")
    assert items.far_route == "graph" and items.sketch_recall is not None  # measured, not kept
    assert not sketch.exists(store.path, "items") and "items_sketch" not in store.db.list_tables().tables
    assert list((store.path / sketch.DIRECTORY).iterdir()) == []
    assert far_sketch(store, store.items, exact=False) is None


def test_a_saved_sketch_replaces_the_old_one_under_open_maps(store):
    first = sketch.save(store.path, "items", sketch.build_sketch(store.items, "fused", store.path))
    old_codes = np.array(first.codes)
    store.write([_item(store.layout, N, _low_rank(np.random.default_rng(7), 1)[0])], [])
    second = sketch.save(store.path, "items", sketch.build_sketch(store.items, "fused", store.path))
    assert len(second.rowids) == N + 1 and second.version == store.items.version
    np.testing.assert_array_equal(first.codes, old_codes)  # a reader of the old maps still reads them
    assert sketch.load(store.path, "items", first.version) is None  # it describes another version
    assert sketch.load(store.path, "items", second.version).directory == second.directory


def test_a_build_removes_what_a_killed_build_left(store):
    root = store.path / sketch.DIRECTORY
    for leftover in (root / ".build-items-999999", root / ".old-items-999998"):
        leftover.mkdir(parents=True)
        (leftover / "q8.npy").write_bytes(b"x" * 1000)
    (root / ".build-segments-999997").mkdir()  # another table's: not ours to touch
    built = sketch.build_sketch(store.items, "fused", store.path)
    assert sorted(p.name for p in root.iterdir()) == sorted([built.directory.name, ".build-segments-999997"])


def test_a_table_that_changes_during_the_build_leaves_no_sketch_behind(store, monkeypatch):
    from mmrec.errors import MmrecError

    monkeypatch.setattr(type(store.items), "count_rows", lambda self, *a, **kw: N - 1)  # a row slipped in
    with pytest.raises(MmrecError, match="changed while its sketch was built"):
        sketch.build_sketch(store.items, "fused", store.path)
    assert list((store.path / sketch.DIRECTORY).iterdir()) == []
