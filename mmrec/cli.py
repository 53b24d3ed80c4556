"""The `mmrec` command line: a thin click group over the library; every command lives in
mmrec.commands and calls one library function."""

from __future__ import annotations

import logging

import click

from mmrec import __version__
from mmrec.commands.probe_cmd import probe_command
from mmrec.commands.samples_cmd import samples_command
from mmrec.errors import MmrecError


class _Group(click.Group):
    """Turns MmrecError into a one-line message and exit code 1 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MmrecError as e:
            raise click.ClickException(str(e)) from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmrec")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """mmrec: multimodal search and recommendation for audio and video libraries."""
    from rich.logging import RichHandler

    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(message)s",
                        handlers=[RichHandler(show_path=False, show_time=verbose > 0)])
    _quiet_transformers()


def _quiet_transformers() -> None:
    """The CLI draws its own progress; transformers' per-load weight bars would interleave."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


main.add_command(probe_command)
main.add_command(samples_command)


def _add_catalog_commands() -> None:
    from mmrec.commands.bench_cmd import bench_command
    from mmrec.commands.extractors_cmd import extractors_command
    from mmrec.commands.index_cmd import index_command
    from mmrec.commands.ingest_cmd import ingest_command
    from mmrec.commands.query_cmd import query_command
    from mmrec.commands.recommend_cmd import evaluate_command, interactions_group, recommend_command
    from mmrec.commands.serve_cmd import serve_command
    from mmrec.commands.stats_cmd import stats_command

    for command in (ingest_command, query_command, stats_command, index_command, extractors_command,
                    interactions_group, recommend_command, evaluate_command, serve_command, bench_command):
        main.add_command(command)


_add_catalog_commands()


def run() -> None:
    """The `mmrec` console script: `main`, then a quick exit.

    Once a command that loaded torch and the models is done, the interpreter's teardown
    (freeing every module and model object) takes ~1.2 s on two cores, a sixth of a cold
    text query, and does nothing a finished command needs. So after the command returns
    or exits, the exit handlers run, the streams are flushed and the process ends at once.
    An exception still propagates (with its traceback and the normal teardown), and so
    does any non-daemon thread still running (the normal exit waits for it).
    """
    import atexit
    import os
    import sys
    import threading

    try:
        main()
        code = 0
    except SystemExit as e:  # click ends every run with one
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
