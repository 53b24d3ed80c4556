"""A long-lived reader's copy of the catalog in memory (mmrec.catalog.resident): it answers
as the tables do without reading them, follows other processes' commits, steps aside
while it is behind or too big, and takes the sketch's shortlist where `mmrec index` kept one."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from mmrec.bench.query import build_catalog
from mmrec.bench.serve import add_segments
from mmrec.catalog import CatalogStore, keep_resident, resident_items
from mmrec.catalog.store import ItemRecord
from mmrec.fusion import FusionLayout
from mmrec.search import in_memory, nearest, sketch
from mmrec.search.calibration import Calibration, off_item_queries
from mmrec.search.index import build_indexes

N = 3000
DIMS = [("visual", 64), ("audio", 32)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("resident") / "cat.lance"
    store = build_catalog(path, N, DIMS, batch=1000)  # several fragments: row ids are not positions
    add_segments(store, batch=1000)
    return path


@pytest.fixture()
def store(catalog, tmp_path) -> CatalogStore:
    shutil.copytree(catalog, tmp_path / "cat.lance")
    return CatalogStore.open(tmp_path / "cat.lance")


def _kept(store: CatalogStore, **kw) -> object:
    """A copy the test drives by hand (the watcher thread never wakes)."""
    return keep_resident(store, poll_s=3600, **kw)


def _answer(store: CatalogStore, q: np.ndarray, k: int = 10, **kw) -> list[tuple[str, float, str | None]]:
    return [(h.item_id, round(h.score, 5), h.segment.seg_id if h.segment else None)
            for h in nearest.nearest_items(store, q, k, **kw)]


def _no_table_reads(store: CatalogStore, monkeypatch) -> None:
    def refuse(*a, **kw):
        raise AssertionError("a table was read")
    for table in (store.items, store.segments):
        monkeypatch.setattr(table, "search", refuse)
        monkeypatch.setattr(table, "to_lance", refuse)


def test_the_copy_answers_as_the_tables_do_without_reading_them(store, catalog, monkeypatch):
    other = CatalogStore.open(store.path)  # a short-lived reader of the same tables
    queries = [*off_item_queries(store.layout, 5, seed=3)]
    want = [_answer(other, q, exact=True) for q in queries]
    kept = _kept(store)
    assert resident_items(store).version == store.items.version and kept.segments() is not None
    _no_table_reads(store, monkeypatch)
    assert [_answer(store, q, exact=True) for q in queries] == want  # same items, scores, moments
    assert [_answer(store, q) for q in queries] == want  # under 20,000 rows: every row scored


def test_another_handles_commit_is_followed_and_the_tables_answer_until_the_copy_catches_up(store):
    kept = _kept(store)
    writer = CatalogStore.open(store.path)
    v = np.zeros(store.layout.dim, np.float32)
    v[0] = 1.0
    writer.write([ItemRecord(id="f" * 32, path="/new.mp4", size=1, mtime=0.0, duration=4.0, kind="video",
                             title="new", text="", tags=[], vectors={}, fused=v, fingerprints={})], [])
    kept._poll()  # the watcher saw the new version, not yet loaded
    assert resident_items(store) is None
    assert _answer(store, v, 1)[0][0] == "f" * 32  # read from the table meanwhile
    kept._load()
    assert resident_items(store).version == writer.items.version
    assert _answer(store, v, 1)[0][0] == "f" * 32


def test_the_watcher_follows_commits_on_its_own(store):
    keep_resident(store, poll_s=0.02)
    before = resident_items(store).version
    CatalogStore.open(store.path).items.delete(f"id = '{0:032x}'")
    deadline = time.monotonic() + 10
    while (resident_items(store) is None or resident_items(store).version == before) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    copy = resident_items(store)
    assert copy is not None and copy.version > before and len(copy.items.ids) == N - 1


def test_tables_over_the_memory_limit_are_left_to_the_reader(store):
    items_bytes = N * store.layout.dim * 4
    kept = _kept(store, max_bytes=items_bytes + 1000)  # the items fit, the segments do not
    assert resident_items(store) is not None and kept.segments() is None
    q = off_item_queries(store.layout, 1, seed=5)[0]
    assert _answer(store, q, exact=True) == _answer(CatalogStore.open(store.path), q, exact=True)


def test_the_sketch_shortlists_far_and_near_queries_from_the_copy(store, monkeypatch):
    monkeypatch.setattr(Calibration, "far_route", property(lambda self: "sketch"))
    build_indexes(store)
    exact = CatalogStore.open(store.path)
    _kept(store)
    used = []
    real = sketch.Sketch.shortlist
    monkeypatch.setattr(sketch.Sketch, "shortlist", lambda self, q, n: used.append(n) or real(self, q, n))
    _no_table_reads(store, monkeypatch)  # neither for the sketch's rows nor their vectors
    far = off_item_queries(store.layout, 20, seed=8)
    ids = [f"{i:032x}" for i in range(0, N, N // 20)]
    vectors = {r["id"]: np.asarray(r["fused"], np.float32) for r in exact.get_items(ids, ["id", "fused"])}
    recall = []
    for q, skip in [*((q, ()) for q in far), *((vectors[i], (i,)) for i in ids)]:
        got = {h[0] for h in _answer(store, q, exclude=skip, with_segments=False, exact=False)}
        want = {h[0] for h in _answer(exact, q, exclude=skip, with_segments=False, exact=True)}
        recall.append(len(got & want) / 10)
    assert len(used) == len(recall) and min(used) >= 10
    assert np.mean(recall[:20]) >= 0.95 and np.mean(recall[20:]) >= 0.95


def _low_rank(rng: np.random.Generator, n: int, dim: int, rank: int) -> np.ndarray:
    x = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, dim))
    x += 0.02 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_the_projection_is_measured_and_refused_where_it_would_miss_neighbours():
    layout = FusionLayout.from_dims([("visual", "synthetic-visual", 128)])
    rng = np.random.default_rng(2)
    proj = in_memory.projection(_low_rank(rng, 4000, 128, 12), layout)
    assert proj is not None and proj.recall >= in_memory.TARGET_RECALL
    assert [k for k, _ in proj.shortlists][0] == 10 and proj.size(10) <= 1000
    assert proj.size(11) >= proj.size(10) and proj.size(400) > proj.size(100)  # scaled past the last k
    iso = rng.standard_normal((4000, 1024)).astype(np.float32)  # 256 of 1,024 directions: a quarter of it
    wide = FusionLayout.from_dims([("visual", "synthetic-visual", 1024)])
    assert in_memory.projection(iso / np.linalg.norm(iso, axis=1, keepdims=True), wide) is None


def test_a_copy_large_enough_is_searched_through_its_projection(store, monkeypatch):
    monkeypatch.setattr(in_memory, "PROJECTION_ROWS", 1000)
    exact = CatalogStore.open(store.path)
    _kept(store)
    q0 = off_item_queries(store.layout, 1, seed=1)[0]
    assert _answer(store, q0, exact=True) == _answer(store, q0)  # every row scored while it builds
    deadline = time.monotonic() + 60
    while not resident_items(store).memo.get("projection") and time.monotonic() < deadline:
        time.sleep(0.05)
    proj = resident_items(store).memo["projection"]
    assert proj and proj.recall >= in_memory.TARGET_RECALL
    used = []
    real = in_memory.Projection.candidates
    monkeypatch.setattr(in_memory.Projection, "candidates",
                        lambda self, q, n: used.append(n) or real(self, q, n))
    queries = off_item_queries(store.layout, 20, seed=13)
    recall = [len({h[0] for h in _answer(store, q, with_segments=False)}
                  & {h[0] for h in _answer(exact, q, with_segments=False, exact=True)}) / 10 for q in queries]
    assert len(used) == len(queries) and np.mean(recall) >= 0.95
