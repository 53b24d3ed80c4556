"""`mmrec ingest DIR`: embed a media directory into the catalog, with progress and a summary."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from mmrec.commands.console import err_console, print_json, printable
from mmrec.commands.engine import check_engine, engine_options
from mmrec.commands.options import csv_list, db_option, make_catalog, model_options

DONE_EVENTS = ("embedded", "unchanged", "duplicate", "dropped")  # one per file


class _RatesColumn(ProgressColumn):
    """files/s and model inputs/s (frames, windows, texts) since the start."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        if elapsed <= 0:
            return Text("")
        units = task.fields.get("units", {})
        parts = [f"{task.completed / elapsed:.2f} files/s"]
        parts += [f"{n / elapsed:.0f} {name}/s" for name, n in sorted(units.items()) if n]
        return Text(", ".join(parts), style="cyan")


class IngestProgress:
    """Turns ingest events into a live bar on a terminal, or plain lines in a log."""

    def __init__(self, live: bool) -> None:
        self.live = live
        self.units: dict[str, int] = {}
        self.done = 0
        self.total = 0
        self.t0 = time.perf_counter()
        self.last_line = 0.0
        self.bar = Progress(SpinnerColumn(), TextColumn("ingest"), BarColumn(), MofNCompleteColumn(),
                            _RatesColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                            TextColumn("{task.fields[current]}", style="dim"),
                            console=err_console, disable=not live, transient=False)
        self.task = self.bar.add_task("ingest", total=None, units=self.units, current="", start=False)

    def __enter__(self) -> IngestProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "planned":
            self.total = data["total"]
            self.t0 = time.perf_counter()  # rates count from here, not from model loading
            self.bar.update(self.task, total=self.total)
            self.bar.start_task(self.task)
            err_console.print(f"{self.total} files to embed, {data['unchanged']} unchanged")
            return
        if event == "thumbnails":
            err_console.print(f"making the thumbnails of {data['total']} files")
            return
        if event == "failed":
            err_console.print(f"[red]failed[/red] {escape(printable(data['path']))}: "
                              f"{escape(printable(data['message']))}")
        for name, n in data.get("units", {}).items():
            self.units[name] = self.units.get(name, 0) + n
        if event in DONE_EVENTS or (event == "failed" and data["final"]):
            self.done += 1
        self.bar.update(self.task, completed=min(self.done, self.total), units=self.units,
                        current=Path(data.get("path", "")).name[:40])
        if not self.live:
            self._line()

    def _line(self) -> None:
        """Without a terminal: one progress line every 5 s (and at the last file)."""
        now = time.perf_counter()
        if now - self.last_line < 5 and self.done < self.total:
            return
        self.last_line = now
        elapsed = max(now - self.t0, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        units = ", ".join(f"{n / elapsed:.0f} {k}/s" for k, n in sorted(self.units.items()))
        err_console.print(f"[{self.done}/{self.total}] {rate:.2f} files/s"
                          f"{', ' + units if units else ''}, ETA {eta:.0f}s")


@click.command("ingest")
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@db_option
@click.option("--recursive/--no-recursive", default=True, show_default=True,
              help="Walk subdirectories (symlink loops are never followed).")
@click.option("--extractors", "only", callback=csv_list, default=None, metavar="clip,clap,text",
              help="Run only these extractors of the preset (names or modalities); the other "
                   "modalities keep what is stored.")
@model_options
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Decoding threads (each runs ffmpeg).")
@click.option("--write-every", type=click.IntRange(min=1), default=16, show_default=True,
              help="Files per catalog commit: a crash loses at most this many files' work.")
@click.option("--thumbnails/--no-thumbnails", default=True, show_default=True,
              help="Make JPEG posters of the files embedded (and of their segments) under "
                   "<db>/_thumbs/; `mmrec index` makes any that are missing.")
@click.option("--asr/--no-asr", default=True, show_default=True,
              help="Transcribe speech (faster-whisper; the set's model) into timed text segments.")
@click.option("--ocr/--no-ocr", default=True, show_default=True,
              help="Read on-screen text of videos (Tesseract) into timed text segments.")
@engine_options(gpus=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def ingest_command(directory: Path, db: Path | None, recursive: bool, only: list[str] | None,
                   preset: str | None, device: str | None, batch_size: int | None,
                   model_paths: tuple[str, ...], workers: int, write_every: int, thumbnails: bool,
                   asr: bool, ocr: bool, engine: str, address: str | None, ray_workers: int | None,
                   gpus_per_worker: float | None, as_json: bool) -> None:
    """Embed every audio/video file under DIRECTORY into the catalog.

    Unchanged files (same path, size and mtime, or same content) are skipped; files
    embedded with other extractor weights are embedded again. A file that cannot be
    read is listed with its reason and stored in the catalog's errors; the run goes
    on and exits 0. Ctrl-C stops after the batch in flight: run again to resume.
    """
    from mmrec.catalog import IngestOptions

    check_engine(engine, address, ray_workers, gpus_per_worker)
    catalog = make_catalog(db, device, batch_size, model_paths)
    off = {name for name, on in (("speech", asr), ("screen", ocr)) if not on}
    options = IngestOptions(recursive=recursive, workers=workers, write_batch=write_every,
                            thumbnails=thumbnails, sources=_sources(catalog, preset, off))
    with IngestProgress(live=err_console.is_terminal) as progress, _first_ctrl_c_stops() as stop:
        summary = catalog.ingest(directory, preset=preset, only=only, options=options,
                                 progress=progress, should_stop=stop.is_set, engine=engine,
                                 address=address, gpus_per_worker=gpus_per_worker, ray_workers=ray_workers)
    if as_json:
        print_json(summary_json(summary, catalog.path))
    else:
        print_summary(summary, catalog.path)
    if summary.interrupted:
        err_console.print(f"interrupted: {len(summary.ingested)} files stored; run the same "
                          "command again to resume (stored files are skipped)")
        sys.exit(130)


def _sources(catalog: Any, preset: str | None, off: set[str]) -> tuple[str, ...] | None:
    """The set's text sources minus those turned off (None: all of them)."""
    if not off:
        return None
    from mmrec.extractors import presets

    name = catalog.preset_name(preset)
    return tuple(s for s in presets.get_set(name).sources if s not in off)


@contextmanager
def _first_ctrl_c_stops() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the run to stop after the file in hand; a second aborts."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err_console.print("stopping after the file in hand (Ctrl-C again to abort at once)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C alone
        yield stop
        return
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def summary_json(summary: Any, db: Path) -> dict[str, Any]:
    return {"db": str(db), "ingested": len(summary.ingested), "unchanged": summary.unchanged,
            "failed": [f.__dict__ for f in summary.failed], "removed": summary.removed,
            "duplicates": [{"path": p, "same_as": t} for p, t in summary.duplicates],
            "segments": summary.segments, "seconds": round(summary.seconds, 3),
            "timings": {k: round(v, 3) for k, v in summary.timings.items()},
            "random_weights": summary.random_weights, "interrupted": summary.interrupted,
            "thumbnails": None if summary.thumbs is None else summary.thumbs.to_json()}


def print_summary(summary: Any, db: Path) -> None:
    """ingested / unchanged / failed (each with its reason), and where the time went."""
    from mmrec.commands.console import console

    table = Table(title=f"ingest into {db}", show_header=False)
    table.add_row("ingested", str(len(summary.ingested)))
    table.add_row("unchanged", str(summary.unchanged))
    table.add_row("failed", str(len(summary.failed)))
    if summary.duplicates:
        table.add_row("duplicates (same bytes)", str(len(summary.duplicates)))
    if summary.removed:
        table.add_row("removed (file gone)", str(summary.removed))
    table.add_row("segments", str(summary.segments))
    thumbs = summary.thumbs
    if thumbs is not None:
        table.add_row("thumbnails", f"{thumbs.made} made, {len(thumbs.failed)} files failed"
                      + (" (stopped: `mmrec index` makes the rest)" if thumbs.stopped else ""))
    t = summary.timings
    after = f", thumbs {t['thumbs']:.1f}" if "thumbs" in t else ""
    table.add_row("time", f"{summary.seconds:.1f}s (scan {t.get('scan', 0):.1f}, hash+probe "
                  f"{t.get('hash_probe', 0):.1f}, model+wait {t.get('embed', 0):.1f}, write "
                  f"{t.get('write', 0):.1f}{after}; decode {t.get('decode', 0):.1f} on worker threads)")
    console.print(table)
    for f in summary.failed:
        console.print(f"  [red]failed[/red] {escape(printable(f.path))}: {f.stage}: "
                          f"{escape(printable(f.message))}")
    for f in thumbs.failed if thumbs is not None else ():
        console.print(f"  [yellow]no thumbnails[/yellow] {escape(printable(f.path))}: "
                      f"{escape(printable(f.reason))}")
    for path, twin in summary.duplicates:
        console.print(f"  duplicate {escape(printable(path))}: same bytes as {escape(printable(twin))}")
    for name in summary.random_weights:
        err_console.print(f"[yellow]note[/yellow]: {name} runs on random weights, so its vectors "
                          "are random: only the other modalities carry meaning")
