"""How each modality's cosines spread on a catalog, and query weights made comparable by it.

One extractor's cosines can sit near 0.9 for any two items while another's spread over
-0.2..0.8; summed raw, the widest one decides every ranking. The spread (the standard
deviation of cosines between random pairs of items) is measured on a sample of the
catalog after each ingest and index, kept in its metadata, and each weighted modality's
weight is divided by it (rescaled so the weights keep their sum): one fused vector and
one index still serve every weighting, since only the query changes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmrec.fusion import parse_weights

SPREAD_KEY = "modality_spread"  # catalog meta: {"rows": items measured on, "modalities": {m: {...}}}
SAMPLE = 2000


def measure_spreads(store: Any, sample: int = SAMPLE, seed: int = 0) -> dict[str, Any]:
    """{"rows": item count, "modalities": {m: {"mean", "std", "pairs"}}} from up to `sample`
    random items, each paired with another random item that also has the modality."""
    from mmrec.catalog import vector_matrix

    rows = store.items.count_rows()
    out: dict[str, Any] = {"rows": rows, "modalities": {}}
    if rows < 2:
        return out
    rng = np.random.default_rng(seed)
    offsets = np.sort(rng.choice(rows, size=min(sample, rows), replace=False)).tolist()
    fused = vector_matrix(store.items.take_offsets(offsets).select(["fused"]).to_arrow().column("fused"),
                          store.layout.dim)
    for m, block in store.layout.split(fused).items():
        present = np.flatnonzero(np.any(block != 0, axis=1))
        if present.size < 2:
            continue
        a = block[present]
        b = block[rng.permutation(present)]
        keep = np.any(a != b, axis=1)  # a pair of one item with itself says nothing
        cos = np.einsum("ij,ij->i", a[keep], b[keep])
        if cos.size:
            out["modalities"][m] = {"mean": round(float(cos.mean()), 6), "std": round(float(cos.std()), 6),
                                    "pairs": int(cos.size)}
    return out


def record_spreads(store: Any) -> dict[str, Any]:
    """Measure the spreads and keep them in the catalog's metadata (after a write)."""
    spreads = measure_spreads(store)
    store.set_meta({SPREAD_KEY: spreads})
    return spreads


def stored_spreads(store: Any) -> dict[str, float]:
    """{modality: std} kept in the catalog's metadata ({} for catalogs never measured)."""
    kept = store.meta().get(SPREAD_KEY)
    if not isinstance(kept, dict):
        return {}
    return {m: float(s["std"]) for m, s in kept.get("modalities", {}).items() if s.get("std", 0) > 0}


def balanced(weights: dict[str, float], spreads: dict[str, float]) -> dict[str, float]:
    """Weights divided by each modality's spread, rescaled to keep their sum: a modality
    whose cosines vary little still moves the ranking as much as its weight says. A
    modality with no measured spread, or a single weighted one, keeps its weight."""
    live = {m: w for m, w in weights.items() if w and m in spreads}
    if len(live) < 2:
        return dict(weights)
    scaled = {m: w / spreads[m] for m, w in live.items()}
    factor = sum(live.values()) / sum(scaled.values())
    return {m: (scaled[m] * factor if m in scaled else w) for m, w in weights.items()}


def random_modalities(store: Any) -> set[str]:
    """Modalities whose extractor ran on random weights at ingest (catalog metadata)."""
    return {e["modality"] for e in store.meta().get("extractors", []) if e.get("random_weights")}


def default_weights(modalities: tuple[str, ...], random: set[str]) -> dict[str, float]:
    """Weight 1 for every modality with real weights, 0 for those on random weights (their
    cosines carry no meaning); all 1 when every one is random (nothing better to go on)."""
    real = [m for m in modalities if m not in random]
    return {m: (1.0 if m in real or not real else 0.0) for m in modalities}


def query_weights(store: Any, weights: str | dict[str, float] | None = None, modality: str = "all",
                  notes: list[str] | None = None) -> dict[str, float]:
    """A query's (or a user's) modality weights: as given, or 1 for each real-weight
    modality and 0 for random ones (a note says so); then balanced by the spreads."""
    layout = store.layout
    if isinstance(weights, dict):
        w = {m: float(weights.get(m, 0.0)) for m in layout.modalities}
    elif weights:
        w = parse_weights(weights, layout.modalities)
    else:
        random = random_modalities(store)
        w = default_weights(layout.modalities, random)
        if notes is not None:
            notes += [f"{m} runs on random weights: it weighs 0 here (give --weights {m}=1 to use it)"
                      for m in layout.modalities if m in random and not w[m]]
    if modality != "all":
        layout.block(modality)
        w = {m: (w.get(m, 1.0) or 1.0) if m == modality else 0.0 for m in layout.modalities}
    return balanced(w, stored_spreads(store))
