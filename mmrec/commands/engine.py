"""--engine and its Ray options, shared by `mmrec ingest` and `mmrec recommend --all-users`."""

from __future__ import annotations

from typing import Any

import click


def engine_options(gpus: bool) -> Any:
    """--engine local|ray, --address and --ray-workers (and --gpus-per-worker when the command
    runs models on the workers)."""

    def decorate(f: Any) -> Any:
        opts = [
            click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                         help="local: this process; ray: spread over a Ray cluster "
                              "(pip install 'mmrec[ray]'; docs/scale-out.md)."),
            click.option("--address", default=None, metavar="auto|HOST:PORT",
                         help="With --engine ray: the cluster to join (default: start a local Ray)."),
            click.option("--ray-workers", type=click.IntRange(min=1), default=None,
                         help="With --engine ray: workers (default: from the cluster's GPUs/CPUs)."),
        ]
        if gpus:
            opts.append(click.option("--gpus-per-worker", type=click.FloatRange(min=0), default=None,
                                     help="With --engine ray: GPUs per embed worker (fractions share "
                                          "one; default 1 on a GPU cluster, else CPU workers)."))
        for opt in reversed(opts):
            f = opt(f)
        return f

    return decorate


def check_engine(engine: str, address: str | None, ray_workers: int | None,
                 gpus_per_worker: float | None = None) -> None:
    """The Ray options only mean something with --engine ray."""
    if engine != "ray" and (address or ray_workers or gpus_per_worker is not None):
        raise click.UsageError("--address, --ray-workers and --gpus-per-worker need --engine ray")
