"""`score` benchmark: batched score + top-k, mmrec.kernels against the obvious alternatives.

Backends: the kernels (NumPy reference, Numba CPU, Numba CUDA, and mmrec-auto = what
backend="auto" runs on a GPU machine: the torch GEMM route) and NumPy matmul +
argpartition, torch matmul + topk (same device; float32, and float16/bfloat16 for float16
items). Each case is checked against float32 scores
first, then timed; rows report time, GB/s and TFLOP/s against the copy bandwidth and
matmul rate measured in the same run, and the peak extra memory of one call.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmrec import kernels as K
from mmrec import scoring

from .common import Report, measure
from .score_cases import CPU_GOAL, Case, cases_for, ceilings

TORCH_CHUNK_BYTES = 2 << 30  # score block of the torch baseline, users chunked to stay under


def numpy_topk(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The obvious NumPy way: full score matrix, argpartition, sort the k."""
    s = users @ items.astype(np.float32, copy=False).T
    k = min(k, s.shape[1])
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    ps = np.take_along_axis(s, part, 1)
    order = np.argsort(-ps, axis=1, kind="stable")
    return np.take_along_axis(part, order, 1), np.take_along_axis(ps, order, 1)


def torch_topk(users: Any, items: Any, k: int) -> tuple[Any, Any]:
    """torch matmul + topk on the items' device, users chunked to bound the score block."""
    import torch

    step = max(1, TORCH_CHUNK_BYTES // (4 * items.shape[0]))
    outs = [torch.topk(users[i : i + step] @ items.T, min(k, items.shape[0]), dim=1)
            for i in range(0, users.shape[0], step)]
    return torch.cat([o.indices for o in outs]), torch.cat([o.values for o in outs])


# (relative score error, index overlap) a backend must reach: float32 arithmetic, and the
# reduced-precision torch baselines (fp16/bf16 operands reorder near-ties).
TOLERANCE = {"fp16": (0.05, 0.95), "bf16": (0.1, 0.9)}


def _check(idx: np.ndarray, sc: np.ndarray, ref_i: np.ndarray, ref_s: np.ndarray,
           backend: str = "") -> dict[str, Any]:
    """Scores close to the float32 reference and (nearly) the same items (ties may swap)."""
    k = ref_i.shape[1]
    overlap = float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(idx, ref_i, strict=True)]))
    err = float(np.max(np.abs(sc[:, :k].astype(np.float64) - ref_s)))
    scale = float(np.max(np.abs(ref_s))) or 1.0
    rel, min_overlap = TOLERANCE.get(backend.rsplit("-", 1)[-1], (2e-3, 0.98))
    return {"max_abs_err": err, "overlap": overlap, "ok": bool(err <= rel * scale and overlap >= min_overlap)}


class _Runner:
    """Holds the device state of one run: ceilings, data per case, the sync function."""

    def __init__(self, device: str, quick: bool) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")
        self.quick = quick
        self.torch = None
        try:
            import torch

            self.torch = torch
        except ImportError:
            pass
        self.sync = (lambda: self.torch.cuda.synchronize()) if self.cuda else None
        self.ceil = ceilings(device, quick)

    def data(self, case: Case, rng: np.random.Generator) -> tuple[np.ndarray, Any, Any]:
        """users (host float32), items (host, or device tensor on CUDA), float32 view of items."""
        users = rng.standard_normal((case.users, case.dim), dtype=np.float32)
        if self.cuda:
            t = self.torch
            gen = t.Generator(device=self.device).manual_seed(int(rng.integers(1 << 31)))
            items = t.randn(case.items, case.dim, device=self.device, generator=gen)
            if case.dtype == "float16":  # the reference sees the same rounded values
                half = items.half()
                return users, half, half.float()
            return users, items, items
        items = rng.standard_normal((case.items, case.dim), dtype=np.float32).astype(case.dtype)
        return users, items, items

    def backends(self, case: Case, users: np.ndarray, items: Any) -> dict[str, Callable[[], Any]]:
        k = case.k
        if self.cuda:
            t = self.torch
            tu = t.from_numpy(users).to(self.device)
            out: dict[str, Callable[[], Any]] = {
                "numba-cuda": lambda: K.topk(users, items, k, backend="cuda"),
                "mmrec-auto": lambda: scoring.topk(users, items, k, backend="auto")}
            if case.dtype == "float32":
                out["torch-fp32"] = lambda: torch_topk(tu, items, k)
            else:
                tb, ib = tu.to(t.bfloat16), items.to(t.bfloat16)
                th = tu.half()
                out["torch-fp16"] = lambda: torch_topk(th, items, k)
                out["torch-bf16"] = lambda: torch_topk(tb, ib, k)
            if case.cpu_too:
                host = items.float().cpu().numpy().astype(case.dtype)
                out["numba-cpu"] = lambda: K.topk(users, host, k, backend="cpu")
                out["numpy-matmul"] = lambda: numpy_topk(users, host, k)
            return out
        out = {"numba-cpu": lambda: K.topk(users, items, k, backend="cpu"),
               "mmrec-auto": lambda: scoring.topk(users, items, k),  # what users get here
               "numpy-matmul": lambda: numpy_topk(users, items, k)}
        if case.reference:
            out["numpy-ref"] = lambda: K.topk(users, items, k, backend="numpy")
        if self.torch is not None and case.dtype == "float32":
            tu, ti = self.torch.from_numpy(users), self.torch.from_numpy(items)
            out["torch-cpu-fp32"] = lambda: torch_topk(tu, ti, k)
        return out

    def peak_bytes(self, name: str, fn: Callable[[], Any]) -> int | None:
        """Peak extra memory of one call: tracemalloc on the CPU, allocator stats on CUDA."""
        if self.cuda and (name.startswith("torch") or name == "mmrec-auto"):  # torch's allocator
            t = self.torch
            t.cuda.synchronize()
            base = t.cuda.memory_allocated()
            t.cuda.reset_peak_memory_stats()
            fn()
            t.cuda.synchronize()
            return int(t.cuda.max_memory_allocated() - base)
        if name == "numba-cuda":
            return None  # measured once per case from free device memory (see run)
        if name.startswith("torch"):
            return None  # torch's CPU allocator is invisible to tracemalloc
        tracemalloc.start()
        try:
            fn()
            return int(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()


def _to_np(res: Any) -> tuple[np.ndarray, np.ndarray]:
    i, s = res
    if hasattr(i, "cpu"):
        i, s = i.cpu().numpy(), s.float().cpu().numpy()
    return np.asarray(i), np.asarray(s, dtype=np.float64)


def _numba_cuda_footprint(fn: Callable[[], Any]) -> int | None:
    """Device memory a first numba-cuda call keeps (its cached plan), from free memory."""
    try:
        from numba import cuda

        free0 = cuda.current_context().get_memory_info()[0]
        fn()
        return int(free0 - cuda.current_context().get_memory_info()[0])
    except Exception:  # noqa: BLE001 - informational only
        return None


def run(quick: bool, out: Path, device: str, full: bool | None = None) -> dict[str, Any]:
    """Run the score sweep and write score.json / score.png under out.

    Args:
        quick: tiny sizes (seconds, for tests). full: the large sweep (default on CUDA).
        device: "cpu" or "cuda" (the CUDA sweep needs torch for data and baselines).
    """
    r = _Runner(device, quick)
    rep = Report("score", device, quick)
    cases = cases_for(device, quick, r.cuda if full is None else full)
    rep.params = {"cases": len(cases), "ceilings": r.ceil, "torch_chunk_bytes": TORCH_CHUNK_BYTES}
    rng = np.random.default_rng(0)
    for case in cases:
        users, items, items32 = r.data(case, rng)
        fns = r.backends(case, users, items)
        ref = _reference(r, case, users, items32)
        footprint = _numba_cuda_footprint(fns["numba-cuda"]) if "numba-cuda" in fns else None
        for name, fn in fns.items():
            if not (r.cuda or quick):  # let the last backend's pool stop spinning (SETTLE_S)
                time.sleep(SETTLE_S)
            check = _check(*_to_np(fn()), *ref, backend=name)
            t = measure(fn, warmup=1, repeat=3, sync=r.sync,
                        budget_s=0.5 if quick else 1.5)
            peak = footprint if name == "numba-cuda" else r.peak_bytes(name, fn)
            rep.rows.append(_row(case, name, t, check, peak, r.ceil))
        if _is_cpu_goal(case) and {"numba-cpu", "numpy-matmul"} <= fns.keys():
            rep.extra["cpu_goal_paired"] = paired(fns["numba-cpu"], fns["numpy-matmul"], 3 if quick else 7)
        out.mkdir(parents=True, exist_ok=True)  # rows so far, in case a long sweep is cut short
        (out / "score.partial.json").write_text(json.dumps(rep.rows, default=str))
        del fns, items, items32
        if r.cuda:
            r.torch.cuda.empty_cache()
    _goals(rep, r.cuda)
    cols = ["backend", "U", "N", "D", "k", "items", "median ms", "GB/s", "TFLOP/s", "x floor",
            "peak MB", "ok"]
    table = [[x["backend"], x["U"], x["N"], x["D"], x["k"], x["dtype"], x["median_ms"], x["gb_s"],
              x["tflop_s"], x["x_floor"], None if x["peak_bytes"] is None else x["peak_bytes"] / 1e6,
              x["check"]["ok"]] for x in rep.rows]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), "score + top-k: time vs users")


# Idle seconds before each CPU backend is timed. OpenBLAS (and torch's OpenMP) workers
# busy-wait ~0.1 s after a call; a Numba parallel pass started meanwhile shares the cores
# with them and ran 3x slower (U=1: 24 vs 7.4 ms), so each backend is timed on its own.
SETTLE_S = 0.3

GOAL_SIZE = (CPU_GOAL.users, CPU_GOAL.items, CPU_GOAL.dim, CPU_GOAL.k, CPU_GOAL.dtype)  # U, N, D, k, dtype


def _is_cpu_goal(case: Case) -> bool:
    return (case.users, case.items, case.dim, case.k, case.dtype) == GOAL_SIZE


def paired(a: Callable[[], Any], b: Callable[[], Any], rounds: int) -> dict[str, Any]:
    """a and b timed in alternating rounds (after one warm-up each), so a drifting load on
    a shared machine hits both alike; speed = median(b) / median(a) (> 1: a is faster)."""
    a()
    b()
    ta, tb = [], []
    for _ in range(rounds):
        for fn, ts in ((a, ta), (b, tb)):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return {"rounds": rounds, "a_ms": [x * 1e3 for x in ta], "b_ms": [x * 1e3 for x in tb],
            "speed": float(np.median(tb) / np.median(ta)),
            "speed_min_max": [float(min(tb) / max(ta)), float(max(tb) / min(ta))]}


def _reference(r: _Runner, case: Case, users: np.ndarray, items32: Any) -> tuple[np.ndarray, np.ndarray]:
    """float32 scores of every item, top-k by a full sort (torch on CUDA, NumPy on CPU)."""
    if r.cuda:
        return _to_np(torch_topk(r.torch.from_numpy(users).to(r.device), items32.float(), case.k))
    return _to_np(numpy_topk(users, np.asarray(items32, np.float32), case.k))


def _row(case: Case, name: str, t: Any, check: dict, peak: int | None, ceil: dict) -> dict[str, Any]:
    itemsize = 2 if case.dtype == "float16" else 4
    nbytes = case.items * case.dim * itemsize + case.users * case.dim * 4
    flops = 2.0 * case.users * case.items * case.dim
    half = name.endswith(("fp16", "bf16"))
    rate = ceil["matmul_fp16_flops"] if half else ceil["matmul_fp32_flops"]
    floor = max(nbytes / ceil["copy_bytes_per_s"], flops / rate)
    return {"backend": name, "U": case.users, "N": case.items, "D": case.dim, "k": case.k,
            "dtype": case.dtype, **t.as_dict(), "gb_s": nbytes / t.median / 1e9,
            "tflop_s": flops / t.median / 1e12, "floor_ms": floor * 1e3,
            "bandwidth_floor_ms": nbytes / ceil["copy_bytes_per_s"] * 1e3,
            "x_floor": t.median / floor, "peak_bytes": peak, "check": check}


def _goals(rep: Report, cuda: bool) -> None:
    """Verdicts on the issue's goals, from the rows of this run."""
    rows = rep.rows
    if cuda:
        small = [x for x in rows if x["backend"] == "numba-cuda" and x["U"] <= 16 and x["N"] >= 1_000_000]
        if small:
            worst = max(small, key=lambda x: x["median_ms"] / x["bandwidth_floor_ms"])
            ratio = worst["median_ms"] / worst["bandwidth_floor_ms"]
            rep.goal("numba-cuda within 1.3x of the bandwidth floor for U<=16 (N>=1M)", ratio <= 1.3,
                     f"worst {ratio:.2f}x at U={worst['U']} N={worst['N']} D={worst['D']} "
                     f"k={worst['k']} {worst['dtype']}")
        slower = []
        for x in (x for x in rows if x["backend"] == "mmrec-auto"):
            peer = "torch-fp32" if x["dtype"] == "float32" else "torch-fp16"
            for y in rows:
                if y["backend"] == peer and all(y[c] == x[c] for c in ("U", "N", "D", "k", "dtype")):
                    if x["median_ms"] > y["median_ms"]:
                        slower.append(f"U={x['U']} N={x['N']} D={x['D']} k={x['k']} {x['dtype']}: "
                                      f"{x['median_ms'] / y['median_ms']:.2f}x {peer}")
        rep.goal("backend='auto' never slower than torch matmul+topk (same dtype)", not slower,
                 "; ".join(slower) or "faster or equal in every case")
    goal_rows = {x["backend"]: x for x in rows
                 if (x["U"], x["N"], x["D"], x["k"], x["dtype"]) == GOAL_SIZE}
    if "numba-cpu" in goal_rows and "numpy-matmul" in goal_rows:
        a, b = goal_rows["numba-cpu"], goal_rows["numpy-matmul"]
        pair = rep.extra.get("cpu_goal_paired")  # alternating rounds: fairer on a busy machine
        speed = pair["speed"] if pair else b["median_ms"] / a["median_ms"]
        mem = None if a["peak_bytes"] is None or not b["peak_bytes"] else a["peak_bytes"] / b["peak_bytes"]
        met = speed >= 1.0 and mem is not None and mem < 0.1
        rep.goal("numba-cpu >= 1.0x numpy matmul+argpartition at U=256 N=100k D=512 k=20, <10% peak memory",
                 met, f"speed {speed:.2f}x ({'median of alternating rounds' if pair else 'medians'}), "
                 f"peak memory {mem if mem is None else f'{mem:.1%}'} of numpy's, on {rep.device}")
    failed = [f"{x['backend']} U={x['U']} N={x['N']}" for x in rows if not x["check"]["ok"]]
    rep.goal("every backend agrees with the float32 reference", not failed, "; ".join(failed) or "all agree")


def _plot(ax: Any, rows: list[dict]) -> None:
    n, d = max((x["N"], x["D"]) for x in rows if x["D"] == min(y["D"] for y in rows))
    series: dict[str, list[tuple[int, float]]] = {}
    for x in rows:
        if x["N"] == n and x["D"] == d and x["k"] == min(y["k"] for y in rows):
            series.setdefault(f"{x['backend']} ({x['dtype']})", []).append((x["U"], x["median_ms"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"users per call (N={n:,}, D={d})")
    ax.set_ylabel("median ms per call")
