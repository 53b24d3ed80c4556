"""Time mmrec.kernels.topk per backend (after a JIT warm-up) and write JSON results."""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time

import numpy as np

from mmrec import kernels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--users", type=int, default=256)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    ap.add_argument("--backends", default="numpy,cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="bench_kernels.json")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    users = rng.standard_normal((a.users, a.dim), dtype=np.float32)
    items = rng.standard_normal((a.items, a.dim), dtype=np.float32).astype(a.dtype)
    rows = []
    for backend in a.backends.split(","):
        kernels.topk(users[:2], items[:1000], a.k, backend=backend)  # JIT warm-up
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            kernels.topk(users, items, a.k, backend=backend)
            times.append(time.perf_counter() - t)
        rows.append({"backend": backend, "best_s": min(times), "median_s": float(np.median(times)),
                     "times_s": times})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"U={a.users} N={a.items} D={a.dim} k={a.k} items={a.dtype}")
    print(f"{'backend':<8} {'best s':>8} {'median s':>9}")
    for r in rows:
        print(f"{r['backend']:<8} {r['best_s']:>8.3f} {r['median_s']:>9.3f}")
    with open(a.out, "w") as f:
        json.dump({"params": vars(a), "machine": platform.platform(), "results": rows,
                   "process_peak_rss_mb": peak_mb}, f, indent=2)


if __name__ == "__main__":
    main()
