"""Tune the CUDA top-k: time pass-1 kernels against the bandwidth floor and torch, on one GPU.

Development tool (needs torch + a GPU): checks each variant against torch float32 first,
then times it with items resident on the device. Usage:
    python benchmarks/tune_cuda.py --out tune.json [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from mmrec.kernels import cuda as C

from mmrec import kernels as K


def timeit(fn, repeat: int = 7) -> float:
    """Median wall seconds after one warm-up (the call returns host arrays, so it syncs)."""
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def copy_bw() -> float:
    """Device-to-device copy bandwidth, bytes read + written per second."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = timeit(lambda: b.copy_(a), 10)
    return 2 * a.numel() / t


def torch_topk(users: torch.Tensor, items: torch.Tensor, k: int) -> tuple:
    """torch matmul + topk, users chunked so the score block stays under 4 GB."""
    step = max(1, (1 << 30) // items.shape[0])
    out = [torch.topk(users[i : i + step] @ items.T, k, dim=1) for i in range(0, len(users), step)]
    return torch.cat([o.indices for o in out]), torch.cat([o.values for o in out])


def check(users, items_t, k) -> dict:  # noqa: ANN001
    """Our result vs torch float32 (scores close; index sets nearly equal under ties/rounding)."""
    idx, sc = K.topk(users, items_t, k, backend="cuda")
    ti, ts = torch_topk(torch.from_numpy(users).cuda(), items_t.float(), k)
    ts = ts.cpu().numpy()
    ti = ti.cpu().numpy()
    same = np.mean([len(set(a) & set(b)) / k for a, b in zip(idx, ti, strict=True)])
    return {"max_score_err": float(np.abs(sc - ts).max()), "set_overlap": float(same)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="tune.json")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    bw = copy_bw()
    rows = []
    base = dict(C.KERNELS)
    S = C.Stream
    variants = {
        "default": base,
        "uncapped": {u: dataclasses.replace(t, regs=0) for u, t in base.items()},
        "w4": {u: dataclasses.replace(t, warps=4) if isinstance(t, S) else t for u, t in base.items()},
        "tile": {**base, 16: C.Tiling(256, 1, 16, 4, 8, 64), 1: C.Tiling(256, 1, 1, 4, 8, 256, regs=0)},
    }
    big = {
        "stream16": S(16, 4, 64),
        "stream16r0": S(16, 4, 64, regs=0),
        "big64": C.Tiling(32, 8, 8, 8, 8, 32),
        "big64r0": C.Tiling(32, 8, 8, 8, 8, 32, regs=0),
    }
    n_items, dim = (200_000, 512) if a.quick else (1_000_000, 512)
    gen = torch.Generator(device="cuda").manual_seed(0)
    items32 = torch.randn(n_items, dim, device="cuda", generator=gen)
    items = {"f32": items32, "f16": items32.half()}
    rng = np.random.default_rng(0)

    def use(kernels: dict) -> None:
        C.KERNELS.clear()
        C.KERNELS.update(kernels)

    for vname, kernels in variants.items():
        use(kernels)
        for U in (1, 2, 4, 8, 16) if vname == "default" else (1, 16):
            users = rng.standard_normal((U, dim)).astype(np.float32)
            for dt, it in items.items():
                if vname != "default" and dt != "f32":
                    continue
                for k in (20, 1000) if vname == "default" else (20,):
                    ok = check(users, it, k) if vname == "default" else {}
                    t = timeit(lambda: K.topk(users, it, k, backend="cuda"))  # noqa: B023
                    floor = it.numel() * it.element_size() / bw
                    rows.append({"variant": vname, "U": U, "N": n_items, "D": dim, "dtype": dt, "k": k,
                                 "ms": t * 1e3, "floor_ms": floor * 1e3, "x_floor": t / floor, **ok})
                    print(rows[-1], flush=True)
    use(base)
    for n in (10_000, 100_000):  # fixed per-call cost
        users = rng.standard_normal((1, dim)).astype(np.float32)
        t = timeit(lambda: K.topk(users, items32[:n], 20, backend="cuda"))  # noqa: B023
        rows.append({"variant": "default", "U": 1, "N": n, "D": dim, "dtype": "f32", "k": 20, "ms": t * 1e3})
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for U in (1, 16):
            users = rng.standard_normal((U, dim)).astype(np.float32)
            for _ in range(3):
                K.topk(users, items32, 20, backend="cuda")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=8), flush=True)
    for bname, tl in big.items():
        use({1: base[1], 1 << 30: tl})
        for U in (32, 64, 256, 1024) if a.quick else (32, 64, 256, 1024, 4096):
            users = rng.standard_normal((U, dim)).astype(np.float32)
            it = items["f32"]
            ok = check(users[:64], it, 20) if U == 64 else {}
            t = timeit(lambda: K.topk(users, it, 20, backend="cuda"), 3)  # noqa: B023
            rows.append({"variant": bname, "U": U, "N": n_items, "D": dim, "dtype": "f32", "k": 20,
                         "ms": t * 1e3, "tflops": 2 * U * n_items * dim / t / 1e12, **ok})
            print(rows[-1], flush=True)
    use(base)
    for U in (1, 16, 64, 256, 1024, 4096):
        ut = torch.from_numpy(rng.standard_normal((U, dim)).astype(np.float32)).cuda()
        for dt, it in items.items():
            u2 = ut.to(it.dtype)
            t = timeit(lambda: torch_topk(u2, it, 20), 3)  # noqa: B023
            rows.append({"variant": "torch", "U": U, "N": n_items, "D": dim, "dtype": dt, "k": 20,
                         "ms": t * 1e3})
            print(rows[-1], flush=True)
    for r in rows:
        print(f"{r['variant']:>9} U={r['U']:<5} {r['dtype']} k={r['k']:<5} {r['ms']:8.3f} ms"
              + (f"  x_floor={r['x_floor']:.2f}" if "x_floor" in r else "")
              + (f"  {r['tflops']:.1f} TFLOP/s" if "tflops" in r else "")
              + (f"  err={r['max_score_err']:.1e} ovl={r['set_overlap']:.4f}" if "set_overlap" in r else ""))
    with open(a.out, "w") as f:
        json.dump({"copy_bw": bw, "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
