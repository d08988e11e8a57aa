"""What `mme`'s commands share: the settings the root resolved, the console, JSON output."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console

from local.home import LocalHome

# Piped or captured output (CI logs, files) gets room for the summary tables, unless COLUMNS
# says how wide the reader is.
PIPED_WIDTH = 120


def _width() -> int | None:
    """COLUMNS when set (also when piped); else the terminal's (None: rich asks it), else 120."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    return None if sys.stdout.isatty() else PIPED_WIDTH


console = Console(width=_width())


@dataclass(frozen=True)
class Settings:
    """`mme --home --project-name`, as the root resolved them: its context object."""

    home: LocalHome
    project: str


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_root().obj  # type: ignore[no-any-return]


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of a table."
)


def print_json(document: Any) -> None:
    # click.echo, not the rich console: no wrapping, colour or markup in what a script parses.
    click.echo(json.dumps(document, indent=2, default=str))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def when(timestamp: str | None) -> str:
    return timestamp[:19].replace("T", " ") if timestamp else "-"
