"""`mmrec query`: items (or moments) similar to a text, a file or a catalogued item."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from mmrec.commands.console import console, err_console, print_json, printable
from mmrec.commands.options import db_option, make_catalog, model_options

MODALITIES = ("all", "visual", "audio", "text", "multilingual")


def _span(segment: Any, words: bool = False) -> str:
    if segment is None:
        return ""
    label = f" ({segment.label})" if segment.label else ""
    text = segment.text if words and segment.label != "title" else None  # titles: see the path
    said = f" “{text[:48]}…”" if text and len(text) > 48 else (f" “{text}”" if text else "")
    return f"{segment.start:.1f}-{segment.end:.1f}s {segment.modality}{label}{said}"


def hits_table(hits: list[Any], title: str, words: bool = False) -> Table:
    """rank, score, per-modality scores, path, best segment."""
    modalities = list(dict.fromkeys(m for h in hits for m in h.scores))  # layout order
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    for m in modalities:
        table.add_column(m, justify="right")
    table.add_column("path", overflow="fold")
    table.add_column("segment")
    for h in hits:
        table.add_row(str(h.rank), f"{h.score:.3f}", *[f"{h.scores.get(m, 0.0):.3f}" for m in modalities],
                      escape(printable(h.path)), _span(h.segment, words))
    return table


@click.command("query")
@click.option("--text", default=None, help="Find items matching this text.")
@click.option("--file", "file", type=click.Path(path_type=Path), default=None,
              help="Find items similar to this media file (catalogued or not).")
@click.option("--item", default=None, help="Find items similar to a catalogued item (id or path).")
@db_option
@click.option("-k", "--k", "k", type=int, default=10, show_default=True, help="How many results.")
@click.option("--modality", type=click.Choice(MODALITIES), default="all", show_default=True,
              help="Score with one modality only.")
@click.option("--weights", default=None, metavar="visual=1,audio=1,text=1",
              help="Per-modality weights of this query (unnamed modalities get 0).")
@click.option("--where", default=None, metavar="SQL",
              help="Filter on item columns, e.g. \"duration > 60 AND kind = 'video'\".")
@click.option("--segments", "moments", is_flag=True,
              help="Rank moments (file + start-end) instead of whole files.")
@click.option("--exact/--ann", "exact", default=None,
              help="Force a flat exact scan or the ANN index (default: by catalog size).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@model_options
def query_command(text: str | None, file: Path | None, item: str | None, db: Path | None, k: int,
                  modality: str, weights: str | None, where: str | None, moments: bool,
                  exact: bool | None, as_json: bool, preset: str | None, device: str | None,
                  batch_size: int | None, model_paths: tuple[str, ...]) -> None:
    """Search the catalog by --text, --file or --item.

    A catalogued --file reuses its stored vectors and is left out of the results; any
    other file is decoded and embedded now. Scores are weighted sums of per-modality
    cosines, shown per modality.
    """
    given = [n for n, v in (("--text", text), ("--file", file), ("--item", item)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --text, --file or --item"
                               + (f" (got {' and '.join(given)})" if given else ""))
    if k <= 0:
        raise click.BadParameter(f"{k} is not a positive number of results", param_hint="--k")
    catalog = make_catalog(db, device, batch_size, model_paths)
    result = catalog.search(text=text, file=file, item=item, k=k, modality=modality, weights=weights,
                            where=where, moments=moments, exact=exact, preset=preset)
    for note in result.notes:
        err_console.print(f"[yellow]note[/yellow]: {note}")
    if as_json:
        print_json([h.to_json() for h in result.hits])
        return
    query = text if text is not None else str(file or item)
    if not result.hits:
        console.print(f"no {'moments' if moments else 'items'} match {printable(query)!r}"
                      + (f" with --where {where!r}" if where else ""))
        return
    title = f"{'moments' if moments else 'items'} like {escape(printable(query))!r}"
    console.print(hits_table(result.hits, title, words=moments))  # a moment shows its words
