"""Query latency (p50/p95/p99) of catalog search, exact and with the ANN index, at
several catalog sizes, and recall@10 of the index against exact search.

Catalogs are synthetic (clustered unit vectors in the default layout: ViT-B-32 512 +
CLAP 512 + MiniLM 384 = 1,408 dims) and written straight to LanceDB; queries go through
the same code as `mmrec query`: by item (a catalogued file: stored vectors, itself
excluded) via Catalog.search, and by text (the real MiniLM text embedding, timed
separately, plus the search). Best-segment lookup is off (synthetic items have none).

    python benchmarks/bench_query.py --sizes 10000,100000 --out bench-out/query
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

import mmrec
from mmrec.fusion import FusionLayout
from mmrec.index import build_indexes
from mmrec.search import nearest_items
from mmrec.store import CatalogStore, items_schema

LAYOUT = (("visual", 512), ("audio", 512), ("text", 384))
TOPICS = 200


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def build(path: Path, n: int, seed: int = 0, batch: int = 50_000) -> CatalogStore:
    """A catalog of n synthetic items: each modality block near one of TOPICS centres."""
    layout = FusionLayout.from_dims([(m, f"synthetic-{m}", d) for m, d in LAYOUT])
    store = CatalogStore.create(path, layout, {"preset": "synthetic"})
    rng = np.random.default_rng(seed)
    centres = {m: rng.standard_normal((TOPICS, d)).astype(np.float32) for m, d in LAYOUT}
    schema = items_schema(layout)
    for start in range(0, n, batch):
        m_rows = min(batch, n - start)
        topic = rng.integers(0, TOPICS, m_rows)
        fused = np.concatenate([_unit(centres[m][topic] + rng.standard_normal((m_rows, d)).astype(
            np.float32)) for m, d in LAYOUT], axis=1)
        cols = {
            "id": [f"{i:032x}" for i in range(start, start + m_rows)],
            "path": [f"/synthetic/{i}.mp4" for i in range(start, start + m_rows)],
            "size": np.arange(start, start + m_rows), "mtime": np.zeros(m_rows),
            "duration": rng.uniform(5, 600, m_rows), "kind": np.where(topic % 3, "video", "audio"),
            "title": [f"item {i}" for i in range(start, start + m_rows)], "text": [""] * m_rows,
            "tags": [[] for _ in range(m_rows)],
            **{f"{m}_vec": pa.nulls(m_rows, pa.list_(pa.float32(), d)) for m, d in LAYOUT},
            "fused": pa.FixedSizeListArray.from_arrays(pa.array(fused.ravel()), fused.shape[1]),
            "fingerprints": ["{}"] * m_rows,
            "ingested_at": pa.array([datetime.now(UTC)] * m_rows, pa.timestamp("us", tz="UTC")),
        }
        store.items.add(pa.table(cols, schema=schema))
    return store


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": len(ms)}


def time_queries(fn, args: list, warmup: int = 10) -> list[float]:
    for a in args[:warmup]:
        fn(a)
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def text_embedding_ms(queries: list[str]) -> dict[str, float]:
    """The MiniLM text embedding a text query pays before searching (real packaged model)."""
    from mmrec.extractors import load_extractor

    ext = load_extractor("minilm", device="cpu")
    return percentiles(time_queries(lambda q: ext.embed_text([q]), queries))


def run_size(root: Path, n: int, queries: int, kind: str) -> dict:
    path = root / f"synthetic-{n}.lance"
    t0 = time.perf_counter()
    store = CatalogStore.open(path) if CatalogStore.exists(path) else build(path, n)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    ids = [f"{i:032x}" for i in rng.integers(0, n, queries)]
    fused = {r["id"]: np.asarray(r["fused"], np.float32) for r in store.get_items(ids, ["id", "fused"])}
    qvecs = [fused[i] + 0.2 * rng.standard_normal(fused[i].shape).astype(np.float32) for i in ids]
    catalog = mmrec.Catalog(path)
    res: dict = {"items": n, "dim": store.layout.dim, "build_catalog_s": build_s}

    def vec_query(exact: bool):
        return lambda q: nearest_items(store, q, 10, with_segments=False, exact=exact)

    res["exact_vector_ms"] = percentiles(time_queries(vec_query(True), qvecs))
    res["exact_item_ms"] = percentiles(time_queries(
        lambda i: catalog.search(item=i, k=10, best_segment=False, exact=True), ids))
    t0 = time.perf_counter()
    build_indexes(store, kind)
    res["index_build_s"] = time.perf_counter() - t0
    res["index"] = kind
    res["ann_vector_ms"] = percentiles(time_queries(vec_query(False), qvecs))
    res["ann_item_ms"] = percentiles(time_queries(
        lambda i: catalog.search(item=i, k=10, best_segment=False, exact=False), ids))
    recall = []
    for q in qvecs[:100]:
        exact = {h.item_id for h in vec_query(True)(q)}
        ann = {h.item_id for h in vec_query(False)(q)}
        recall.append(len(exact & ann) / 10)
    res["recall_at_10"] = float(np.mean(recall))
    return res


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["items"] for r in results]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("exact_vector_ms", "exact"), ("ann_vector_ms", "ANN index")):
        ax.plot(sizes, [r[key]["p95"] for r in results], marker="o", label=f"{label} p95")
        ax.plot(sizes, [r[key]["p50"] for r in results], marker=".", ls="--", label=f"{label} p50")
    ax.axhline(50, color="grey", lw=0.8, ls=":", label="goal p95 50 ms")
    ax.set(xscale="log", yscale="log", xlabel="items", ylabel="latency (ms)",
           title="search latency, k=10, CPU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "query.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--index", default="hnsw", choices=["hnsw", "ivf-pq"])
    ap.add_argument("--out", type=Path, default=Path("bench-out/query"))
    ap.add_argument("--work", type=Path, default=None, help="where catalogs are built (kept)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        r = run_size(work, n, args.queries, args.index)
        results.append(r)
        print(f"{n:>9,} items: exact p95 {r['exact_vector_ms']['p95']:.1f} ms, ANN p95 "
              f"{r['ann_vector_ms']['p95']:.1f} ms (by item {r['ann_item_ms']['p95']:.1f} ms), "
              f"recall@10 {r['recall_at_10']:.3f}, index build {r['index_build_s']:.0f} s", flush=True)
    text = text_embedding_ms(["relaxing rain sounds", "football goals", "how to cook pasta"] * 30)
    report = {"benchmark": "query", "date": datetime.now(UTC).isoformat(), "machine": platform.node(),
              "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
              "lancedb": __import__("lancedb").__version__, "results": results,
              "text_embedding_ms": text}
    (args.out / "query.json").write_text(json.dumps(report, indent=2))
    plot(results, args.out)
    print(f"text query embedding (MiniLM, CPU): p50 {text['p50']:.1f} ms, p95 {text['p95']:.1f} ms")
    print(f"wrote {args.out / 'query.json'} and {args.out / 'query.png'}")


if __name__ == "__main__":
    main()
