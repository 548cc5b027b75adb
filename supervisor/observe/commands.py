"""`supervisor observe <source>`: one command per registered world source."""

from __future__ import annotations

import importlib

import typer

from supervisor.cli import reporting_errors
from supervisor.observe import SOURCES

app = typer.Typer(
    help="Observe the homelab and write the world directory: "
    + ", ".join(sorted(SOURCES)) + ".",
    no_args_is_help=True, rich_markup_mode=None,
)


for _name, _module in SOURCES.items():
    app.command(_name)(reporting_errors(importlib.import_module(_module).command))
