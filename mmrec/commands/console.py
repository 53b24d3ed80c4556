"""The one place that prints: a shared rich console and small output helpers."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

# Pipes and CI logs get a wide fixed width instead of rich's 80-column fallback.
_WIDTH = None if sys.stdout.isatty() else 140
console = Console(highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, nothing else mixed in."""
    click_echo(json.dumps(data, indent=2, default=str))


def click_echo(text: str) -> None:
    import click

    click.echo(text)


def fmt_seconds(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}s"


def printable(text: str) -> str:
    """A path or message safe to print: undecodable bytes of file names become \\xNN."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
