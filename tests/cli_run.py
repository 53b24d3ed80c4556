"""`run(*args)`: the mmrec CLI in-process (click's CliRunner), for the CLI test modules."""

from __future__ import annotations

from click.testing import CliRunner

from mmrec.cli import main


def run(*args: object, ok: bool = True) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `mmrec *args`; with ok, assert it exited 0."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output + result.stderr
    return result.exit_code, result.stdout, result.stderr
