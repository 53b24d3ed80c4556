"""`startup` benchmark: how long a new process takes to answer, as a user types commands.

Each command runs in a fresh interpreter on a catalog of the sample library (offline-tiny
extractors): `mmrec --help`, `mmrec stats` and a text query, in alternating rounds, wall
time from spawn to exit. One more run of each under `python -X importtime` says where the
time goes: the top-level imports by cumulative time, and the rest (models, I/O, the query).
Whether bytecode is present matters most (without it every process compiles torch & co.),
so the report records it.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import Report
from .library import media_library

QUERY = "football match goals"
GOALS_S = {"help": 0.5, "stats": 1.5, "text query": 6.0}
TOP_IMPORTS = 8


def commands(db: Path) -> dict[str, list[str]]:
    """The timed commands, by label (the arguments after `mmrec`)."""
    return {
        "help": ["--help"],
        "stats": ["stats", "--db", str(db)],
        "text query": ["query", "--db", str(db), "--text", QUERY, "-k", "5"],
        "text query, text tower only": ["query", "--db", str(db), "--text", QUERY, "-k", "5",
                                        "--modality", "text"],
    }


def mmrec_argv(args: list[str], importtime: bool = False) -> list[str]:
    """The command line of `mmrec ARGS` in this interpreter (the installed console script's code)."""
    flags = ["-X", "importtime"] if importtime else []
    return [sys.executable, *flags, "-c", "from mmrec.cli import run; run()", *args]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    return time.perf_counter() - t, done


def bytecode_present(module: str = "torch") -> bool | None:
    """Whether the module's compiled bytecode sits beside its source (None: not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(importlib.util.cache_from_source(spec.origin)).exists()


def parse_importtime(stderr: str) -> list[tuple[str, float]]:
    """Top-level imports (cumulative seconds), largest first, from `-X importtime` output."""
    top = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|", 2)
        if name.startswith(" ") and not name.startswith("  ") and cumulative.strip().isdigit():
            top.append((name.strip(), int(cumulative) / 1e6))
    return sorted(top, key=lambda t: -t[1])


def run(quick: bool, out: Path, device: str, library: Path | None = None) -> dict[str, Any]:
    """Time cold `mmrec` commands on a sample catalog; write startup.json / startup.png."""
    rep = Report("startup", device, quick)
    lib = media_library(out, library, quick)
    db = out / ("startup-quick.lance" if quick else "startup.lance")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if not db.exists():
        _, done = _run(mmrec_argv(["ingest", str(lib), "--db", str(db), "--preset", "offline-tiny"]), env)
        if done.returncode != 0:
            raise RuntimeError(f"ingest of {lib} for the startup benchmark failed: {done.stderr[-400:]}")
    cmds = commands(db)
    repeat = 1 if quick else 5
    runs: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(repeat):  # alternating rounds: a slow spell of the machine hits every command
        for label, args in cmds.items():
            seconds, done = _run(mmrec_argv(args), env)
            if done.returncode != 0:
                raise RuntimeError(f"`mmrec {' '.join(args)}` failed: {done.stderr[-400:]}")
            runs[label].append(seconds)
    has_bytecode = bytecode_present()
    rep.params = {"library": str(lib), "catalog": str(db), "preset": "offline-tiny", "repeats": repeat,
                  "query": QUERY, "bytecode_present": has_bytecode,
                  "PYTHONDONTWRITEBYTECODE": os.environ.get("PYTHONDONTWRITEBYTECODE")}
    for label, args in cmds.items():
        seconds, done = _run(mmrec_argv(args, importtime=True), env)
        imports = parse_importtime(done.stderr)
        import_s = sum(s for _, s in imports)
        median = statistics.median(runs[label])
        rep.rows.append({
            "command": label, "argv": ["mmrec", *args], "median_s": median, "min_s": min(runs[label]),
            "max_s": max(runs[label]), "runs_s": runs[label], "goal_s": GOALS_S.get(label),
            "imports_s": import_s, "rest_s": max(median - import_s, 0.0),
            "top_imports": [{"module": m, "seconds": s} for m, s in imports[:TOP_IMPORTS]],
        })
        goal = GOALS_S.get(label)
        if goal is not None:
            rep.goal(f"cold {label} <= {goal} s", median <= goal,
                     f"median {median:.2f} s (min {min(runs[label]):.2f}) over {repeat} runs; "
                     f"imports {import_s:.2f} s: " + ", ".join(f"{m} {s:.2f}" for m, s in imports[:4]))
    if has_bytecode is False:
        rep.notes.append("torch has no compiled bytecode here: every process compiles it (run `make "
                         "install`, which compiles the venv's bytecode)")
    cols = ["command", "median s", "min s", "goal s", "imports s", "largest imports"]
    table = [[r["command"], r["median_s"], r["min_s"], r["goal_s"], r["imports_s"],
              ", ".join(f"{t['module']} {t['seconds']:.2f}" for t in r["top_imports"][:3])]
             for r in rep.rows]
    return rep.finish(out, cols, table, lambda ax: _plot(ax, rep.rows), "cold start of mmrec commands")


def _plot(ax: Any, rows: list[dict[str, Any]]) -> None:
    labels = [r["command"] for r in rows]
    ys = range(len(rows))
    ax.barh(ys, [r["imports_s"] for r in rows], label="imports")
    ax.barh(ys, [r["rest_s"] for r in rows], left=[r["imports_s"] for r in rows], label="the rest")
    for y, r in zip(ys, rows, strict=True):
        if r["goal_s"] is not None:
            ax.plot([r["goal_s"]] * 2, [y - 0.4, y + 0.4], color="red", linewidth=2)
    ax.set_yticks(list(ys), labels)
    ax.set_xlabel("seconds, cold process (red: goal)")
