"""`mmrec bench {decode,extract,ingest,score,query}`: run one benchmark, print its table and goals."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import click

from mmrec.commands.console import console, printable

DEFAULT_OUT = Path("benchmarks/results")


def _common(fn: Any) -> Any:
    fn = click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None,
                      help="Where models/kernels run (default: cuda when available).")(fn)
    fn = click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUT,
                      show_default=True, help="Directory for <benchmark>.json and .png.")(fn)
    return click.option("--quick", is_flag=True, help="Tiny sizes: seconds, for smoke tests.")(fn)


def show(result: dict[str, Any]) -> None:
    """Print a benchmark result: goals, files, then the table last."""
    from rich.table import Table

    env = result["environment"]
    gpu = env.get("gpu") or {}
    console.print(f"[bold]{result['benchmark']}[/] on {gpu.get('name') or env['cpu']} "
                  f"({env['cpu_count']} CPUs), {env['date']}")
    for g in result.get("goals", []):
        mark = {True: "[green]met[/]", False: "[red]NOT met[/]", None: "[yellow]n/a[/]"}[g["met"]]
        console.print(f"  goal {mark}: {g['goal']} - {g['detail']}")
    for note in result.get("notes", []):
        console.print(f"  note: {note}")
    files = result["files"]
    png = f" and {printable(files['png'])}" if files["png"] else ""
    console.print(f"  wrote {printable(files['json'])}{png}")
    t = result["table"]
    table = Table(title=t["title"])
    for c in t["columns"]:
        table.add_column(c, justify="right" if c not in ("backend", "preset", "unit", "stage") else "left")
    for row in t["rows"]:
        table.add_row(*row)
    console.print(table)


def _run(name: str, quick: bool, out: Path, device: str | None, **kw: Any) -> None:
    from mmrec.bench import resolve_device

    module = importlib.import_module(f"mmrec.bench.{name}")
    show(module.run(quick=quick, out=out, device=resolve_device(device), **kw))


@click.group("bench")
def bench_command() -> None:
    """Throughput benchmarks; each writes <out>/<name>.json and <name>.png."""


@bench_command.command("decode")
@_common
@click.option("--library", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Media directory to decode (default: a generated sample library under --out).")
def decode_cmd(quick: bool, out: Path, device: str | None, library: Path | None) -> None:
    """Sampled-frame and audio-window decoding: frames/s and real-time factor per worker count."""
    _run("decode", quick, out, device, library=library)


@bench_command.command("extract")
@_common
def extract_cmd(quick: bool, out: Path, device: str | None) -> None:
    """Model throughput per extractor (frames/s, audio windows/s, texts/s), batch and precision sweep."""
    _run("extract", quick, out, device)


@bench_command.command("ingest")
@_common
@click.option("--library", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Media directory to ingest (default: a generated sample library under --out).")
@click.option("--preset", default=None,
              help="Extractor set (default: offline-tiny); default-random: the default set's real-size "
                   "models, random weights where the real ones are absent.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: the Ray engine on local Ray instances of 2 CPUs per worker (ingest-ray.json).")
@click.option("--ray-workers", default="1,2", show_default=True, metavar="N,N,...",
              help="With --engine ray: the worker counts to measure.")
def ingest_cmd(quick: bool, out: Path, device: str | None, library: Path | None, preset: str | None,
               engine: str, ray_workers: str) -> None:
    """End-to-end Catalog.ingest: files/s, media-hours per hour, stage breakdown."""
    try:
        counts = tuple(int(n) for n in ray_workers.split(",") if n.strip())
    except ValueError:
        raise click.BadParameter(f"{ray_workers!r} is not a list of numbers",
                                 param_hint="--ray-workers") from None
    _run("ingest", quick, out, device, library=library, preset=preset, engine=engine, ray_workers=counts)


@bench_command.command("score")
@_common
@click.option("--full/--no-full", default=None,
              help="The large sweep (default: on with --device cuda; on the CPU it adds items "
                   "10k and 1M, dims 1408, k 1000, 4,096 users).")
def score_cmd(quick: bool, out: Path, device: str | None, full: bool | None) -> None:
    """Batched score + top-k: mmrec.kernels against NumPy and torch."""
    _run("score", quick, out, device, full=full)


@bench_command.command("startup")
@_common
@click.option("--library", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Media directory for the catalog (default: a generated sample library under --out).")
def startup_cmd(quick: bool, out: Path, device: str | None, library: Path | None) -> None:
    """Cold start of `mmrec --help`, `stats` and a text query, and where the time goes."""
    _run("startup", quick, out, device, library=library)


@bench_command.command("serve")
@_common
@click.option("--items", type=click.IntRange(min=100), default=None,
              help="Synthetic catalog size (default: 100000; --quick: 2000).")
def serve_cmd(quick: bool, out: Path, device: str | None, items: int | None) -> None:
    """mmrec serve under a bounded loopback load: p50/p95/p99 and req/s per endpoint at
    concurrency 1, 8 and 32."""
    _run("serve", quick, out, device, items=items)


@bench_command.command("query")
@_common
@click.option("--sizes", default=None, metavar="N,N,...",
              help="Catalog sizes (default: 10000,100000,1000000; --quick: 2000).")
@click.option("--index", "index", type=click.Choice(["hnsw", "ivf-pq"]), default="hnsw", show_default=True)
@click.option("--rebuild-index/--keep-index", default=True, show_default=True,
              help="Rebuild the ANN index of catalogs kept under --out from an earlier run.")
@click.option("--data", type=click.Choice(["clusters", "manifold"]), default="clusters", show_default=True,
              help="Synthetic vectors: clusters = topic + full-width noise (worst case for the index); "
                   "manifold = low intrinsic dimension, like learned embeddings.")
def query_cmd(quick: bool, out: Path, device: str | None, sizes: str | None, index: str,
              rebuild_index: bool, data: str) -> None:
    """Search latency p50/p95/p99 (by item, by vector, by text end to end), exact and
    indexed, and the index's recall@10."""
    parsed = [int(s) for s in sizes.split(",")] if sizes else None
    _run("query", quick, out, device, sizes=parsed, index=index, rebuild=rebuild_index, data=data)
