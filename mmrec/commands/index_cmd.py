"""`mmrec index`: build the ANN indexes that search uses on large catalogs."""

from __future__ import annotations

from pathlib import Path

import click

from mmrec.commands.console import console, print_json
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
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def index_command(db: Path | None, kind: str, calibrate_only: bool, as_json: bool) -> None:
    """Build (or rebuild) the ANN index on item and segment vectors.

    Search uses it automatically from 20,000 rows up (below that an
    exact scan is fast); filters (--where) work with and without it. Rerun after large
    ingests: rows added since are still found, by a slower flat scan. The search
    breadth is measured on the catalog's own vectors (recall@10 >= 0.97 against exact
    on a sample) and kept for every later search. Queries from outside the catalog (text,
    files, users) may instead take a scan of every row from a compressed "sketch" (top
    principal directions + sign bits, a few hundred to thousands of candidates re-scored)
    where it measured better than the graph.
    """
    from mmrec.search import MIN_INDEX_ROWS

    reports = make_catalog(db).index(kind, calibrate_only=calibrate_only)
    if as_json:
        print_json([r.to_json() for r in reports])
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
