"""`mmrec stats`: what a catalog holds."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from mmrec.commands.console import console, print_json, printable
from mmrec.commands.options import db_option, make_catalog


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@click.command("stats")
@db_option
@click.option("--errors", "show_errors", is_flag=True, help="List every recorded failure.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def stats_command(db: Path | None, show_errors: bool, as_json: bool) -> None:
    """Items by kind, segments, errors, extractors and fingerprints, index, storage size."""
    catalog = make_catalog(db)
    stats = catalog.stats()
    errors = catalog.errors() if show_errors or as_json else []
    if as_json:
        print_json({**stats, "error_list": errors})
        return
    table = Table(title=f"catalog {stats['path']}", show_header=False)
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(stats["by_kind"].items()))
    table.add_row("items", f"{stats['items']}" + (f" ({kinds})" if kinds else ""))
    table.add_row("segments", str(stats["segments"]))
    table.add_row("text read from media", f"speech in {stats.get('with_transcript', 0)} items, "
                                          f"on-screen text in {stats.get('with_screen_text', 0)}")
    table.add_row("errors", str(stats["errors"]) + ("" if show_errors or not stats["errors"]
                                                   else "  (list them with --errors)"))
    table.add_row("preset", str(stats["preset"]))
    index = stats["index"]
    table.add_row("ANN index", ", ".join(f"{t}: {v['type']} ({v['unindexed']} rows not yet indexed; "
                                         f"other queries: {v['far_route']})"
                                         for t, v in index.items()) or "none (exact search)")
    table.add_row("storage", _size(stats["storage_bytes"]))
    console.print(table)
    ext = Table(title="extractors")
    for col in ("modality", "preset", "dim", "fingerprint", "weights", "cosine spread"):
        ext.add_column(col)
    for e in stats["extractors"]:
        weights = "RANDOM (weighs 0 by default)" if e.get("random_weights") else str(e.get("weights"))
        spread = stats["spreads"].get(e["modality"])
        shown = f"{spread['mean']:.2f} ± {spread['std']:.3f}" if spread else "not measured"
        ext.add_row(e["modality"], e["preset"], str(e["dim"]), e["fingerprint"], weights, shown)
    console.print(ext)
    for err in errors:
        console.print(f"[red]{escape(printable(err['path']))}[/red]: {err['stage']}: "
                      f"{escape(printable(err['message']))}")
