"""`mmrec probe`: what ffprobe sees in files, and how many segments decoding yields."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.table import Table

from mmrec.commands.console import console, err_console, fmt_seconds, print_json
from mmrec.errors import MediaError

if TYPE_CHECKING:
    from mmrec.media import FramePolicy, MediaInfo

# The media layer (NumPy) and the catalog load when the command runs: every command module
# is imported for `mmrec --help`.


def count_segments(info: MediaInfo, policy: FramePolicy, audio_window_s: float) -> dict[str, int]:
    """Decode a file the way the extractors will and count frames and windows."""
    from mmrec.media import iter_audio_windows, iter_frames

    out = {"frames": 0, "video_windows": 0, "audio_windows": 0}
    if info.has_video:
        times = [t for chunk in iter_frames(info.path, policy, info) for t in chunk.times]
        out["frames"] = len(times)
        out["video_windows"] = len({int(t // policy.window_s) for t in times})
    if info.has_audio:
        out["audio_windows"] = sum(
            1 for _ in iter_audio_windows(info.path, 16000, audio_window_s, info)
        )
    return out


def _streams(info: MediaInfo) -> str:
    parts = []
    for v in info.video:
        fps = f"{v.fps:.3g}fps" if v.fps else "?fps"
        rot = f" rot{v.rotation}" if v.rotation else ""
        parts.append(f"{v.codec} {v.width}x{v.height} {fps}{rot}")
    for a in info.audio:
        parts.append(f"{a.codec} {a.sample_rate}Hz {a.channels}ch")
    parts += [f"sub:{s.codec}" for s in info.subtitles]
    return ", ".join(parts)


@click.command("probe")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--segments/--no-segments", default=False, help="Also decode and count segments.")
@click.option("--fps", default=1.0, show_default=True, help="Frame sampling cap for --segments.")
@click.option("--window", default=10.0, show_default=True, help="Window length in seconds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def probe_command(paths: tuple[Path, ...], segments: bool, fps: float, window: float,
                  as_json: bool) -> None:
    """Probe media files (or every media file under directories)."""
    from mmrec.catalog import iter_media_files
    from mmrec.media import FramePolicy, probe, read_text_meta

    policy = FramePolicy(fps=fps, window_s=window, size=(64, 64))
    rows, failures = [], []
    for root in paths:
        for path in iter_media_files(root):
            try:
                info = probe(path)
                meta = read_text_meta(path, info, embedded=False)
                row = {
                    "path": str(path), "kind": info.kind, "container": info.container,
                    "duration": info.duration, "streams": _streams(info), "title": meta.title,
                }
                if segments:
                    row.update(count_segments(info, policy, window))
                rows.append(row)
            except MediaError as e:
                failures.append({"path": str(path), "error": e.reason, "type": type(e).__name__})
    if as_json:
        print_json({"files": rows, "failed": failures})
        return
    table = Table(title=f"{len(rows)} media files")
    for col in ("file", "kind", "duration", "streams", "title"):
        table.add_column(col)
    if segments:
        for col in ("frames", "video win", "audio win"):
            table.add_column(col, justify="right")
    for r in rows:
        cells = [Path(r["path"]).name, r["kind"], fmt_seconds(r["duration"]), r["streams"],
                 r["title"]]
        if segments:
            cells += [str(r["frames"]), str(r["video_windows"]), str(r["audio_windows"])]
        table.add_row(*cells)
    console.print(table)
    for f in failures:
        err_console.print(f"[red]failed[/red] {f['path']}: {f['error']}")
