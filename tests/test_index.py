"""ANN index on a few thousand synthetic items: recall@10 against exact search at the
default settings, filters with and without the index, and the size rule for using it."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec.catalog.store import CatalogStore, ItemRecord, SegmentRecord
from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout
from mmrec.search.index import build_indexes, search_kind
from mmrec.search.nearest import nearest_items, nearest_segments

N = 3000
DIMS = (("visual", 64), ("audio", 32), ("text", 96))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CatalogStore:
    """Items drawn around 40 topics per modality (as real embeddings cluster), a third
    of them audio-only (no visual block)."""
    rng = np.random.default_rng(7)
    layout = FusionLayout.from_dims([(m, f"synthetic-{m}", d) for m, d in DIMS])
    s = CatalogStore.create(tmp_path_factory.mktemp("ann") / "cat.lance", layout, {"preset": "synthetic"})
    blocks = {}
    for m, d in DIMS:
        centres = rng.standard_normal((40, d))
        blocks[m] = _unit(centres[rng.integers(0, 40, N)] + 0.8 * rng.standard_normal((N, d)))
    items, segs = [], []
    for i in range(N):
        kind = "audio" if i % 3 == 0 else "video"
        vecs = {m: blocks[m][i] for m, _ in DIMS}
        if kind == "audio":
            vecs["visual"] = None
        fused = layout.fuse(vecs)
        items.append(ItemRecord(id=f"item{i:05d}", path=f"/lib/{i}.mp4", size=i, mtime=0.0,
                                duration=float(5 + i % 100), kind=kind, title=f"t{i}", text="",
                                tags=[], vectors=vecs, fused=fused, fingerprints={}))
        segs.append(SegmentRecord(f"item{i:05d}", "text", 0, 0.0, 5.0, "", layout.fuse(
            {"text": vecs["text"]})))
    for k in range(0, N, 1000):
        s.write(items[k:k + 1000], segs[k:k + 1000])
    return s


def _queries(store: CatalogStore, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = store.items.to_arrow().column("fused").to_pylist()
    base = np.asarray([rows[i] for i in rng.integers(0, N, n)], np.float32)
    return base + 0.3 * rng.standard_normal(base.shape).astype(np.float32)


def test_exact_search_is_used_without_an_index(store):
    assert search_kind(store, store.items, None) is None
    with pytest.raises(ConfigError, match="mmrec index"):
        search_kind(store, store.items, False)


def test_index_recall_at_10_against_exact(store):
    reports = build_indexes(store)
    assert [(r.table, r.kind) for r in reports] == [("items", "hnsw"), ("segments", "hnsw")]
    assert search_kind(store, store.items, None) is None  # 3,000 rows: exact stays the default
    assert search_kind(store, store.items, False).name == "hnsw"
    recalls, seg_recalls = [], []
    for q in _queries(store, 40, seed=1):
        exact = {h.item_id for h in nearest_items(store, q, 10, with_segments=False, exact=True)}
        ann = {h.item_id for h in nearest_items(store, q, 10, with_segments=False, exact=False)}
        recalls.append(len(exact & ann) / 10)
        e = {(h.item_id, h.segment.start) for h in nearest_segments(store, q, 10, exact=True)}
        a = {(h.item_id, h.segment.start) for h in nearest_segments(store, q, 10, exact=False)}
        seg_recalls.append(len(e & a) / 10)
    assert np.mean(recalls) >= 0.95, recalls
    assert np.mean(seg_recalls) >= 0.95, seg_recalls
    # More rows than the default search breadth (ef 200, x refine 5): the search widens.
    q = _queries(store, 1, seed=2)[0]
    deep = nearest_items(store, q, 400, with_segments=False, exact=False)
    assert len(deep) == 400 and len({h.item_id for h in deep}) == 400
    assert len(nearest_segments(store, q, 300, exact=False)) == 300


@pytest.mark.parametrize("exact", [True, False])
def test_where_filters_with_and_without_the_index(store, exact):
    if not exact and not store.items.list_indices():
        build_indexes(store)
    where = "kind = 'video' AND duration > 60"
    for q in _queries(store, 5, seed=2):
        hits = nearest_items(store, q, 10, where=where, with_segments=False, exact=exact)
        assert len(hits) == 10
        rows = store.get_items([h.item_id for h in hits], ["id", "kind", "duration"])
        assert all(r["kind"] == "video" and r["duration"] > 60 for r in rows)
        assert all(h.scores["visual"] != 0.0 for h in hits)


def test_ivf_pq_also_meets_recall(store, tmp_path):
    build_indexes(store, "ivf-pq")
    try:
        recalls = []
        for q in _queries(store, 30, seed=3):
            exact = {h.item_id for h in nearest_items(store, q, 10, with_segments=False, exact=True)}
            ann = {h.item_id for h in nearest_items(store, q, 10, with_segments=False, exact=False)}
            recalls.append(len(exact & ann) / 10)
        assert np.mean(recalls) >= 0.95, recalls
    finally:
        build_indexes(store, "hnsw")


def test_unknown_index_type_lists_the_known_ones(store):
    with pytest.raises(ConfigError, match="hnsw, ivf-pq"):
        build_indexes(store, "annoy")


def test_projected_searches_print_no_lance_warnings(store, capfd):
    """lance prints a deprecation warning to stderr for each projected vector search that
    leaves out `_distance`; `mmrec query` output must stay clean."""
    from mmrec.search.nearest import nearest_ids

    build_indexes(store)  # (again, when the module's earlier test already built it)
    q = _queries(store, 1, seed=3)[0]
    capfd.readouterr()
    for exact in (True, False):
        assert len(nearest_items(store, q, 5, with_segments=False, exact=exact)) == 5
        assert len(nearest_ids(store, q, 5, exact=exact)) == 5
    assert "warn" not in capfd.readouterr().err.lower()
