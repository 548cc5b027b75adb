"""`supervisor observe <source>`: one command per registered world source."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import typer

from supervisor.observe import SOURCES

app = typer.Typer(
    help="Observe the homelab and write the world directory: "
    + ", ".join(sorted(SOURCES)) + ".",
    no_args_is_help=True, rich_markup_mode=None,
)


def _reporting(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from supervisor.cli import reporting_errors  # here: cli imports this module

        return reporting_errors(command)(*args, **kwargs)

    return wrapper


for _name, _module in SOURCES.items():
    app.command(_name)(_reporting(importlib.import_module(_module).command))
