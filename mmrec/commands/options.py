"""Options shared by the catalog commands, and the Catalog they describe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mmrec.errors import ConfigError


def db_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--db", type=click.Path(path_type=Path), default=None,
        help="Catalog directory (default: $MMREC_DB, else ./mmrec.lance).")(f)


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--preset/--device/--batch-size/--model-path: how extractors load."""
    for opt in reversed([
        click.option("--preset", default=None, metavar="NAME",
                     help="Extractor set (default: $MMREC_PRESET, else the catalog's, else "
                          "'default'); see `mmrec extractors`."),
        click.option("--device", default=None, metavar="cpu|cuda",
                     help="Where models run (default: cuda when available, else cpu)."),
        click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Frames/windows/texts per model call (default: the preset's)."),
        click.option("--model-path", "model_paths", multiple=True, metavar="PRESET=PATH",
                     help="Local weights for a preset (file or directory); repeatable."),
    ]):
        f = opt(f)
    return f


def make_catalog(db: Path | None, device: str | None = None, batch_size: int | None = None,
                 model_paths: tuple[str, ...] = ()) -> Any:
    """The mmrec.Catalog the options describe (--model-path mistakes are BadParameter)."""
    from mmrec.catalog import Catalog
    from mmrec.extractors import parse_model_paths

    try:
        paths = parse_model_paths(",".join(model_paths)) or None
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint="--model-path") from e
    return Catalog(db, device=device, batch_size=batch_size, model_paths=paths)


def csv_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    """click callback: "a, b,c" -> ["a", "b", "c"]."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter("give at least one name, e.g. clip,text")
    return items
