"""`mmrec samples`: generate the small sample library used by the demo and the tests."""

from __future__ import annotations

from pathlib import Path

import click

from mmrec.commands.console import console


@click.command("samples")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Regenerate files that already exist.")
@click.option("--broken/--no-broken", default=True, show_default=True,
              help="Also write a truncated download, to show how bad input is reported.")
@click.option("--speech/--no-speech", default=False, show_default=True,
              help="Also write a lecture whose topic is only spoken (needs espeak-ng).")
def samples_command(directory: Path, overwrite: bool, broken: bool, speech: bool) -> None:
    """Generate a sample library of videos, audio files and sidecar text with ffmpeg."""
    from mmrec.media import make_sample_library, make_spoken_sample, write_sample_interactions

    paths = make_sample_library(directory, overwrite=overwrite, include_broken=broken)
    if speech:
        paths.append(make_spoken_sample(directory, overwrite=overwrite))
    interactions = write_sample_interactions(directory)
    console.print(f"{len(paths)} sample files in {directory}, user interactions in {interactions}")
