"""`mmrec extractors`: the presets, their extractor, modality, dim and where weights come from."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table

from mmrec.commands.console import console, print_json
from mmrec.errors import ConfigError


@click.command("extractors")
@click.option("--model-path", "model_paths", multiple=True, metavar="PRESET=PATH",
              help="Local weights for a preset (file or directory); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def extractors_command(model_paths: tuple[str, ...], as_json: bool) -> None:
    """List extractor presets and whether their weights are available offline."""
    from mmrec.extractors import list_presets, list_sets, parse_model_paths, preset_status

    try:
        paths = parse_model_paths(",".join(model_paths))
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--model-path") from e
    rows = [preset_status(p, paths) for p in list_presets()]
    sets = {s.name: list(s.presets) for s in list_sets()}
    if as_json:
        print_json({"presets": [asdict(r) for r in rows], "sets": sets})
        return
    table = Table(title="extractor presets")
    for col in ("preset", "extractor", "modality", "dim", "weights", "real", "ready"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.preset, r.extractor, r.modality or "?", str(r.dim), r.weights,
                      "yes" if r.real_weights else "RANDOM", "yes" if r.available else "no")
    console.print(table)
    for name, members in sets.items():
        console.print(f"set [bold]{name}[/bold]: {', '.join(members)}")
    missing = [r for r in rows if not r.available]
    if missing:
        console.print(f"missing weights: pass --model-path {missing[0].preset}=/path/to/weights "
                      "or set MMREC_MODEL_PATHS")
