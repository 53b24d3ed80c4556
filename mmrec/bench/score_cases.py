"""Sizes of the `score` sweep and the machine ceilings (copy bandwidth, matmul rate) it is
judged against, both measured in the same run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One size of the sweep. cpu_too: also time the CPU backends (on a GPU run);
    reference: also time the (slow) NumPy reference kernel."""

    users: int
    items: int
    dim: int
    k: int
    dtype: str = "float32"
    cpu_too: bool = False
    reference: bool = True


CPU_GOAL = Case(256, 100_000, 512, 20)  # the CPU goal of the issue


def cases_for(device: str, quick: bool, full: bool) -> list[Case]:
    """quick: seconds (tests); CPU: the CPU goal size and a users sweep (across the few-users
    kernel's limit of 32), full adds the other axes at sizes a 2-core, 24 GB machine holds
    (items 10k and 1M, dims 1408, k 1000, 4,096 users); CUDA full: users
    1..16384, items 10k..10M, dims 512 and 1408, k 10..1000, float32 and float16 items (cut
    to what fits a few minutes of GPU time)."""
    if quick:
        return [Case(u, 4000, 32, 10) for u in (1, 16, 64)] + [Case(16, 4000, 32, 100, "float16")]
    if not device.startswith("cuda"):
        out = [CPU_GOAL] + [Case(u, 100_000, 512, 20, reference=False) for u in (1, 2, 4, 16, 32, 64, 1024)]
        if full:
            out += [Case(u, 10_000, 512, 20, reference=False) for u in (16, 256)]
            out += [Case(u, 1_000_000, 512, 20, reference=False) for u in (1, 16, 256)]
            out += [Case(u, 100_000, 1408, 20, reference=False) for u in (16, 256)]
            out += [Case(u, 100_000, 512, 1000, reference=False) for u in (16, 256)]
            out += [Case(4096, 100_000, 512, 20, reference=False)]
        return out
    if not full:
        return [Case(u, 1_000_000, 512, 10, dt) for u in (1, 16, 256) for dt in ("float32", "float16")]
    out = [Case(u, 1_000_000, 512, 10) for u in (1, 16, 64, 256, 1024, 4096, 16384)]
    out += [Case(u, 1_000_000, 512, 10, "float16") for u in (1, 16, 4096)]
    out += [Case(16, 10_000, 512, 10), Case(16, 10_000_000, 512, 10)]
    out += [Case(16, 10_000_000, 512, 10, "float16")]
    out += [Case(16, 1_000_000, 1408, 10)]
    out += [Case(16, 1_000_000, 512, 1000), Case(16, 1_000_000, 512, 1000, "float16")]
    out += [Case(CPU_GOAL.users, CPU_GOAL.items, CPU_GOAL.dim, CPU_GOAL.k, cpu_too=True)]
    return out


def ceilings(device: str, quick: bool) -> dict[str, Any]:
    """Copy bandwidth (bytes read + written per second) and float32/float16 matmul rates."""
    if device.startswith("cuda"):
        import torch

        def best(fn: Any, n: int = 5) -> float:
            fn()
            torch.cuda.synchronize()
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - t)
            return float(np.median(ts))

        nbytes = (64 if quick else 1024) << 20
        a = torch.empty(nbytes, dtype=torch.uint8, device=device)
        b = torch.empty_like(a)
        copy = 2 * nbytes / best(lambda: b.copy_(a))
        n = 2048 if quick else 8192
        x32 = torch.randn(n, n, device=device)
        prev = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # true float32, as the kernels compute
        try:
            f32 = 2 * n**3 / best(lambda: x32 @ x32)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
        x16 = x32.half()
        f16 = 2 * n**3 / best(lambda: x16 @ x16)
        del a, b, x32, x16
        return {"copy_bytes_per_s": copy, "matmul_fp32_flops": f32, "matmul_fp16_flops": f16,
                "how": f"torch: {nbytes >> 20} MiB device copy; {n}^3 matmul, tf32 off"}
    nbytes = (16 if quick else 256) << 20
    a = np.ones(nbytes // 4, np.float32)
    b = np.empty_like(a)

    def best_cpu(fn: Any, n: int = 3) -> float:
        fn()
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
        return float(np.median(ts))

    copy = 2 * nbytes / best_cpu(lambda: np.copyto(b, a))
    n = 512 if quick else 2048
    x = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    f32 = 2 * n**3 / best_cpu(lambda: x @ x)
    return {"copy_bytes_per_s": copy, "matmul_fp32_flops": f32, "matmul_fp16_flops": f32,
            "how": f"numpy: {nbytes >> 20} MiB copyto; {n}^3 float32 matmul"}
