"""`mmrec index`: build the ANN indexes that search uses on large catalogs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from mmrec.commands.console import console, err_console, print_json, printable
from mmrec.commands.options import db_option, make_catalog

# Literal, so that the CLI starts without loading the search stage (numpy, pyarrow); a test
# keeps them equal to mmrec.search.INDEX_KINDS and DEFAULT_KIND.
INDEX_TYPES = ("hnsw", "ivf-pq")
DEFAULT_INDEX_TYPE = "hnsw"


@click.command("index")
@db_option
@click.option("--type", "kind", type=click.Choice(INDEX_TYPES), default=DEFAULT_INDEX_TYPE,
              show_default=True, help="ANN index type (IVF-HNSW with SQ, or IVF-PQ).")
@click.option("--calibrate-only", is_flag=True,
              help="Keep the indexes; only measure their search breadth and rebuild the "
                   "sketch (after ingests, or for an index built by an older mmrec).")
@click.option("--thumbnails/--no-thumbnails", default=True, show_default=True,
              help="Also make the missing poster thumbnails of every item and segment "
                   "(<db>/_thumbs/; catalogs ingested with --no-thumbnails or by an older mmrec).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def index_command(db: Path | None, kind: str, calibrate_only: bool, thumbnails: bool,
                  as_json: bool) -> None:
    """Build (or rebuild) the ANN index on item and segment vectors.

    Search uses it automatically from 20,000 rows up (below that an
    exact scan is fast); filters (--where) work with and without it. Rerun after large
    ingests: rows added since are still found, by a slower flat scan. The search
    breadth is measured on the catalog's own vectors (recall@10 >= 0.97 against exact
    on a sample) and kept for every later search. Queries from outside the catalog (text,
    files, users) may instead take a scan of every row from a compressed "sketch" (top
    principal directions + sign bits, a few hundred to thousands of candidates re-scored)
    where it measured better than the graph.

    Then the poster thumbnails that are missing (items and segments, under <db>/_thumbs/)
    are made, and the folders of items no longer in the catalog removed.
    """
    from mmrec.search import MIN_INDEX_ROWS

    catalog = make_catalog(db)
    reports = catalog.index(kind, calibrate_only=calibrate_only, thumbnails=thumbnails)
    thumbs = catalog.last_thumbnails if thumbnails else None
    if as_json:
        print_json([r.to_json() for r in reports])
        if thumbs is not None:  # stdout keeps the list of index reports; the line goes to stderr
            _print_thumbs(thumbs, err_console)
        return
    for r in reports:
        if r.kind is None:
            console.print(f"{r.table}: {r.rows} rows, too few for an ANN index (needs "
                          f"{MIN_INDEX_ROWS}); exact search stays in use")
        else:
            console.print(f"{r.table}: {r.kind} index on {r.column}, {r.rows} rows, "
                          f"{r.seconds:.1f}s; search breadth {r.breadth} for stored vectors, "
                          f"{r.far_breadth} for other queries (recall@10 {r.recall:.3f} / "
                          f"{r.far_recall:.3f} against exact on a sample, {r.far_ms:.1f} ms)")
            if r.sketch_rerank is not None:
                verdict = ("serves other queries" if r.far_route == "sketch"
                           else "not kept: the graph is better")
                console.print(f"  sketch ({r.sketch_dims} directions + sign bits) re-scoring "
                              f"{r.sketch_rerank}: recall@10 "
                              f"{r.sketch_recall:.3f}, {r.sketch_ms:.1f} ms; {verdict}")
    if thumbs is not None:
        _print_thumbs(thumbs, console)


SHOWN_FAILURES = 10


def _print_thumbs(thumbs: Any, out: Any) -> None:
    """One line for the thumbnails pass, then the files that failed (the first few)."""
    out.print(f"thumbnails: {thumbs.items} items, {thumbs.made} made, {thumbs.kept} kept, "
              f"{len(thumbs.failed)} files failed, {thumbs.seconds:.1f}s"
              + (f"; {thumbs.removed} folders of removed items deleted" if thumbs.removed else ""))
    for f in thumbs.failed[:SHOWN_FAILURES]:
        out.print(f"  no thumbnails for {escape(printable(f.path))}: {escape(printable(f.reason))}")
    if len(thumbs.failed) > SHOWN_FAILURES:
        out.print(f"  ... and {len(thumbs.failed) - SHOWN_FAILURES} more files (-v logs each)")
