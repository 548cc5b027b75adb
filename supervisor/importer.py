"""`supervisor import`: the inventory written from what a homelab already describes."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from supervisor.cli import reporting_errors

app = typer.Typer(help="Write the inventory from what the homelab already describes.",
                  no_args_is_help=True, rich_markup_mode=None)


@app.command("compose")
@reporting_errors
def compose_command(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", show_default=False,
                             help="Per-node Compose folders: DIR/<node>/<stack>/compose.yaml.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="HOSTS_DIR", show_default=False,
                     help="Where the inventory goes. [env SUPERVISOR_INVENTORY; default ./hosts]"),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; print how the inventory differs from "
                           "the Compose files and exit 1 when it does (for CI)."),
    ] = False,
) -> None:
    """Write hosts/<node>/services.yaml from per-node Compose folders."""
    import difflib

    from supervisor.compose import import_compose, render_node

    hosts = out or Path(os.environ.get("SUPERVISOR_INVENTORY") or "hosts")
    nodes = import_compose(directory)
    differ = 0
    for node, services in nodes.items():
        path = hosts / node / "services.yaml"
        wanted = render_node(services)
        try:
            current = path.read_text() if path.exists() else None
        except (OSError, UnicodeDecodeError) as error:
            from supervisor.errors import InputError, Problem

            raise InputError([Problem(str(path), message=f"cannot be read: {error}")]
                             ) from None
        if current == wanted:
            if not check:
                sys.stdout.write(f"{path}: unchanged\n")
            continue
        differ += 1
        if check:
            sys.stdout.writelines(difflib.unified_diff(
                (current or "").splitlines(keepends=True), wanted.splitlines(keepends=True),
                fromfile=f"{path}" if current is not None else "/dev/null",
                tofile=f"{path} (from the Compose files)"))
        else:
            _write(path, wanted)
            sys.stdout.write(f"{path}: {len(services)} service{'s' if len(services) != 1 else ''}"
                             f" {'written' if current is None else 'updated'}\n")
    if check:
        if differ:
            sys.stdout.write(f"{differ} of {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
                             f"differ from the Compose files: run supervisor import compose "
                             f"{directory} --out {hosts}\n")
            raise typer.Exit(1)
        sys.stdout.write(f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} up to date\n")


def _write(path: Path, text: str) -> None:
    from supervisor.errors import InputError, Problem
    from supervisor.safefile import replace_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError([Problem(str(path.parent), message=f"cannot be created: "
                                  f"{error.strerror}")]) from None
    replace_atomically(path, text.encode())
    path.chmod(0o644)  # an inventory is read by others (the supervisor's service user)
