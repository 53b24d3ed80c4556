"""Fusion algebra: query · item equals the weighted sum of per-modality cosines."""

from __future__ import annotations

import numpy as np
import pytest

from mmrec.errors import ConfigError
from mmrec.fusion import FusionLayout, parse_weights


@pytest.fixture
def layout():
    return FusionLayout.from_dims([("text", "minilm", 6), ("visual", "clip", 4), ("audio", "clap", 5)])


def test_layout_orders_blocks_and_round_trips(layout):
    assert layout.modalities == ("visual", "audio", "text")
    assert [b.offset for b in layout.blocks] == [0, 4, 9] and layout.dim == 15
    assert FusionLayout.from_json(layout.to_json()) == layout


def test_dot_product_is_weighted_sum_of_cosines(layout):
    rng = np.random.default_rng(0)
    item = {m: rng.normal(size=b.dim) for m, b in zip(layout.modalities, layout.blocks, strict=True)}
    q = {m: rng.normal(size=b.dim) for m, b in zip(layout.modalities, layout.blocks, strict=True)}
    w = {"visual": 0.7, "audio": 0.2, "text": 1.5}
    fused, query = layout.fuse(item), layout.query(q, w)

    def cos(a, b):
        return a @ b / np.linalg.norm(a) / np.linalg.norm(b)

    expected = sum(w[m] * cos(q[m], item[m]) for m in layout.modalities)
    assert float(query @ fused) == pytest.approx(expected, abs=1e-5)
    parts = layout.modality_scores(query, fused)
    assert sum(float(v[0]) for v in parts.values()) == pytest.approx(expected, abs=1e-5)
    assert float(parts["audio"][0]) == pytest.approx(0.2 * cos(q["audio"], item["audio"]), abs=1e-5)


def test_missing_modality_is_a_zero_block(layout):
    fused = layout.fuse({"visual": np.ones(4), "audio": None})
    assert np.allclose(fused[4:], 0) and np.linalg.norm(fused[:4]) == pytest.approx(1.0)


def test_wrong_dims_and_duplicate_modalities_are_refused(layout):
    with pytest.raises(ConfigError, match="dim 3"):
        layout.fuse({"visual": np.ones(3)})
    with pytest.raises(ConfigError, match="two extractors"):
        FusionLayout.from_dims([("text", "a", 2), ("text", "b", 2)])
    with pytest.raises(ConfigError, match="not in this catalog"):
        layout.block("smell")


def test_parse_weights():
    mods = ("visual", "audio", "text")
    assert parse_weights(None, mods) == {"visual": 1.0, "audio": 1.0, "text": 1.0}
    assert parse_weights("visual=2, text=0.5", mods) == {"visual": 2.0, "audio": 0.0, "text": 0.5}
    for bad in ("visual", "smell=1", "audio=x", "visual=0"):
        with pytest.raises(ConfigError):
            parse_weights(bad, mods)
