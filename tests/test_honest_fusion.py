"""Honest fusion: modalities on random weights weigh 0 unless asked for, and each modality's
weight is divided by the spread of its cosines on the catalog so none drowns the others."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from mmrec import Catalog
from mmrec.catalog import TRANSCRIPT_FIELDS, CatalogStore, items_schema
from mmrec.fusion import FusionLayout
from mmrec.search import balanced, default_weights, measure_spreads, record_spreads

TOPICS, PER_TOPIC = 20, 30
N = TOPICS * PER_TOPIC
DIMS = {"visual": 32, "audio": 32, "text": 32}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def topic_vectors(rng: np.random.Generator, topic: np.ndarray) -> dict[str, np.ndarray]:
    """Each modality tells topics apart only partly: visual knows topic // 2 (pairs of topics
    look alike) with cosines spread wide; audio knows topic % 10 with every pair of items near
    0.9 (a shared component), so its cosines spread little; text knows the topic weakly.
    Only together do they name the topic."""
    noise = {m: rng.standard_normal((N, d)) for m, d in DIMS.items()}
    common = rng.standard_normal(DIMS["audio"])
    return {
        "visual": unit(rng.standard_normal((TOPICS // 2, DIMS["visual"]))[topic // 2]
                       + 0.8 * noise["visual"]),
        "audio": unit(4.0 * common + rng.standard_normal((10, DIMS["audio"]))[topic % 10]
                      + 0.5 * noise["audio"]),
        "text": unit(0.3 * rng.standard_normal((TOPICS, DIMS["text"]))[topic] + noise["text"]),
    }


def make_catalog(path, vectors: dict[str, np.ndarray], random: set[str] = frozenset()) -> CatalogStore:
    layout = FusionLayout.from_dims([(m, f"synthetic-{m}", d) for m, d in DIMS.items()])
    store = CatalogStore.create(path, layout, {"preset": "synthetic"})
    fused = np.stack([layout.fuse({m: v[i] for m, v in vectors.items()}) for i in range(N)])
    store.items.add(pa.table({
        "id": [f"{i:032x}" for i in range(N)], "path": [f"/lib/{i}.mp4" for i in range(N)],
        "size": np.arange(N), "mtime": np.zeros(N), "duration": np.full(N, 60.0),
        "kind": ["video"] * N, "title": [f"item {i}" for i in range(N)], "text": [""] * N,
        "tags": [[] for _ in range(N)],
        **{f"{m}_vec": pa.FixedSizeListArray.from_arrays(pa.array(v.ravel()), v.shape[1])
           for m, v in vectors.items()},
        "fused": pa.FixedSizeListArray.from_arrays(pa.array(fused.ravel()), fused.shape[1]),
        "fingerprints": ["{}"] * N,
        "ingested_at": pa.array([datetime.now(UTC)] * N, pa.timestamp("us", tz="UTC")),
        **{f.name: pa.nulls(N, f.type) for f in TRANSCRIPT_FIELDS},
    }, schema=items_schema(layout)))
    store.set_meta({"extractors": [{"modality": m, "preset": f"synthetic-{m}", "random_weights": m in random}
                                   for m in DIMS]})
    return store


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    rng = np.random.default_rng(5)
    topic = np.repeat(np.arange(TOPICS), PER_TOPIC)
    vectors = topic_vectors(rng, topic)
    path = tmp_path_factory.mktemp("fusion") / "cat.lance"
    store = make_catalog(path, vectors)
    record_spreads(store)
    return path, store, topic, vectors


QUERIES = range(0, N, 17)


def precision(catalog: Catalog, topic: np.ndarray, **kw) -> float:
    hits = 0
    for q in QUERIES:
        result = catalog.search(item=f"{q:032x}", k=10, exact=True, **kw)
        hits += sum(topic[int(h.item_id, 16)] == topic[q] for h in result.hits)
    return hits / (10 * len(QUERIES))


def test_spreads_are_measured_per_modality_and_shown_in_stats(library):
    path, store, _, _ = library
    spreads = Catalog(path).stats()["spreads"]
    assert set(spreads) == set(DIMS)
    assert spreads["audio"]["mean"] > 0.8 and spreads["audio"]["std"] < spreads["visual"]["std"] / 2
    assert abs(spreads["visual"]["mean"]) < 0.2
    again = measure_spreads(store, seed=1)["modalities"]
    for m in DIMS:  # another sample agrees: a property of the catalog, not of the draw
        assert again[m]["std"] == pytest.approx(spreads[m]["std"], rel=0.25)


def test_fused_ranking_beats_every_single_modality(library):
    path, store, topic, vectors = library
    catalog = Catalog(path)
    single = {m: precision(catalog, topic, modality=m) for m in DIMS}
    fused = precision(catalog, topic)
    assert fused >= max(single.values()), (fused, single)
    # the raw sum of cosines (no balancing): the widest modality decides, and fusion loses
    fused_raw = np.concatenate([vectors[m] for m in DIMS], axis=1)
    raw_hits = 0
    for q in QUERIES:
        scores = fused_raw @ fused_raw[q]
        scores[q] = -np.inf
        raw_hits += int(np.sum(topic[np.argsort(-scores)[:10]] == topic[q]))
    raw = raw_hits / (10 * len(QUERIES))
    assert fused > raw + 0.05, (fused, raw, single)


def test_random_weight_modalities_weigh_nothing_unless_asked(tmp_path, library):
    _, _, topic, vectors = library
    store = make_catalog(tmp_path / "random.lance", vectors, random={"visual", "audio"})
    record_spreads(store)
    catalog = Catalog(tmp_path / "random.lance")
    result = catalog.search(item=f"{3:032x}", k=5, exact=True)
    assert all(h.scores["visual"] == 0 and h.scores["audio"] == 0 for h in result.hits)
    assert any("visual runs on random weights: it weighs 0" in n for n in result.notes)
    asked = catalog.search(item=f"{3:032x}", k=5, exact=True, weights="visual=1,text=1")
    assert any(h.scores["visual"] != 0 for h in asked.hits)
    assert any("meaningless" in n for n in asked.notes)


def test_weight_rules():
    assert default_weights(("visual", "audio", "text"), {"visual"}) == {"visual": 0.0, "audio": 1.0,
                                                                        "text": 1.0}
    assert default_weights(("visual", "text"), {"visual", "text"}) == {"visual": 1.0, "text": 1.0}
    b = balanced({"visual": 1.0, "text": 1.0}, {"visual": 0.2, "text": 0.05})
    assert b["text"] == pytest.approx(4 * b["visual"]) and sum(b.values()) == pytest.approx(2.0)
    assert balanced({"visual": 1.0, "text": 0.0}, {"visual": 0.2, "text": 0.05}) == {"visual": 1.0,
                                                                                     "text": 0.0}
