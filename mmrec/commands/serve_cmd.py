"""`mmrec serve`: the HTTP service and its browser page over one catalog."""

from __future__ import annotations

from pathlib import Path

import click

from mmrec.commands.console import err_console
from mmrec.commands.options import db_option


@click.command("serve")
@db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", default=None, envvar="MMREC_TOKEN", metavar="T",
              help="Bearer token for writes (events); without it writes come from this machine only. "
                   "[env: MMREC_TOKEN]")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes (each loads the models once).")
@click.option("--cors", multiple=True, metavar="ORIGIN", help="Allow this origin by CORS (repeatable).")
@click.option("--max-upload-mb", default=200.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), help="Largest file accepted by search by file.")
@click.option("--max-k", default=100, show_default=True, type=click.IntRange(1),
              help="Largest k a request may ask.")
@click.option("--preset", default=None, help="Extractor set for queries (default: the catalog's).")
@click.option("--memory-gb", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Most memory the item and segment vectors held in memory may take (0: read the "
                   "tables on every request).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1),
              help="Threads one request's math may use (1 serves concurrent requests best).")
@click.option("--compute-slots", default=1, show_default=True, type=click.IntRange(1),
              help="Requests searching or recommending at once per worker; the rest queue in order.")
def serve_command(db: Path | None, host: str, port: int, token: str | None, workers: int,
                  cors: tuple[str, ...], max_upload_mb: float, max_k: int, preset: str | None,
                  memory_gb: float, threads: int, compute_slots: int) -> None:
    """Serve search, moments, recommendations, live events, media and a browser page over HTTP.

    The page is at /, the API docs at /docs. Stop with Ctrl-C.
    """
    from mmrec.catalog import default_db_path
    from mmrec.serve import ServeConfig, serve

    config = ServeConfig(db=db or default_db_path(), host=host, port=port, token=token, workers=workers,
                         cors=cors, max_upload_mb=max_upload_mb, max_k=max_k, preset=preset,
                         memory_gb=memory_gb, threads=threads, compute_slots=compute_slots)
    serve(config, on_ready=lambda url: err_console.print(
        f"mmrec serving {config.db} at {url}/ (API docs: {url}/docs); Ctrl-C stops"))
