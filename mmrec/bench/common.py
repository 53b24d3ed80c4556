"""The benchmark harness shared by every benchmark: timing with warm-up and repeats, the
environment record, JSON + PNG output, and goal bookkeeping.

Library code: nothing here prints; the `mmrec bench` command renders the returned table.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

VERSIONED = ("mmrec", "numpy", "numba", "numba-cuda", "torch", "open-clip-torch", "transformers",
             "lancedb", "pyarrow")


@dataclass(frozen=True)
class Timing:
    """Seconds of the timed repeats (warm-up excluded): median, min and max."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def as_dict(self, scale: float = 1e3, unit: str = "ms") -> dict[str, float]:
        return {f"median_{unit}": self.median * scale, f"min_{unit}": self.min * scale,
                f"max_{unit}": self.max * scale, "repeats": len(self.runs)}


def measure(fn: Callable[[], Any], *, warmup: int = 1, repeat: int = 5,
            sync: Callable[[], None] | None = None, budget_s: float | None = None) -> Timing:
    """Time fn: `warmup` untimed calls, then up to `repeat` timed ones (fewer when the
    running total passes budget_s, never fewer than one). `sync` (e.g. a device
    synchronize) runs before each clock read, so asynchronous work is counted."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    runs: list[float] = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if sync:
            sync()
        runs.append(time.perf_counter() - t)
        if budget_s is not None and sum(runs) > budget_s:
            break
    return Timing(tuple(runs))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_info(device: str) -> dict[str, Any] | None:
    """Name, memory and SM count of the CUDA device (through torch), or None on CPU."""
    if not device.startswith("cuda"):
        return None
    import torch

    p = torch.cuda.get_device_properties(torch.device(device))
    return {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1),
            "multiprocessors": p.multi_processor_count, "cuda": torch.version.cuda}


def environment(device: str) -> dict[str, Any]:
    """What the numbers were measured on: machine, CPU, GPU, versions, date."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu_info(device),
        "device": device,
        "versions": {d: v for d in VERSIONED if (v := _version(d)) is not None},
    }


def resolve_device(device: str | None) -> str:
    """The device asked for, else "cuda" when torch sees a GPU, else "cpu"."""
    if device:
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:
        return "cpu"


@dataclass
class Report:
    """One benchmark's result: parameters, rows, goal verdicts and a table to print."""

    name: str
    device: str
    quick: bool
    params: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def goal(self, goal: str, met: bool | None, detail: str) -> None:
        """Record a goal of the issue: met True/False, or None when not measurable here."""
        self.goals.append({"goal": goal, "met": met, "detail": detail})

    def finish(self, out: Path, columns: Sequence[str], table_rows: Sequence[Sequence[Any]],
               plot: Callable[[Any], None] | None, title: str) -> dict[str, Any]:
        """Write <out>/<name>.json and <name>.png; return the result dict (with the table)."""
        out.mkdir(parents=True, exist_ok=True)
        png = out / f"{self.name}.png"
        if plot is not None:
            _plot(png, plot, title)
        result = {
            "benchmark": self.name, "quick": self.quick, "device": self.device,
            "environment": environment(self.device), "params": self.params,
            "results": self.rows, "goals": self.goals, "notes": self.notes, **self.extra,
            "table": {"title": title, "columns": list(columns),
                      "rows": [[_cell(v) for v in r] for r in table_rows]},
            "files": {"json": str(out / f"{self.name}.json"),
                      "png": str(png) if plot is not None else None},
        }
        (out / f"{self.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        return result


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return "" if v is None else str(v)


def _plot(png: Path, draw: Callable[[Any], None], title: str) -> None:
    """One figure through matplotlib's Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    try:
        draw(ax)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(png, dpi=110)
    finally:
        plt.close(fig)
