"""Running an observer: once, or on a fixed schedule, writing the world directory each time.

Shared by every world source, so that they take the same options and report the same way: a
failed endpoint with `--once` is exit 2 after the snapshot (with that node offline) was
written; in the loop it is reported and tried again next time.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NamedTuple

import typer

from supervisor.errors import InputError, Problem, SupervisorError

if TYPE_CHECKING:  # the writer is imported when an observer runs, not when the CLI starts
    from supervisor.observe.snapshot import Observation

DEFAULT_WORLD = Path("/opt/homelab/world")

WorldDirOpt = Annotated[
    Path | None,
    typer.Option("--world", metavar="DIR", show_default=False,
                 help="The world directory to write. [env SUPERVISOR_WORLD; default "
                 "/opt/homelab/world]"),
]
OnceOpt = Annotated[bool, typer.Option("--once", help="Observe once and exit. The default.")]
IntervalOpt = Annotated[
    float | None,
    typer.Option("--interval", metavar="SECONDS", show_default=False,
                 help="Observe every SECONDS until SIGTERM or SIGINT; failures are reported "
                 "and retried."),
]


class ObserveError(SupervisorError):
    """A source could not be observed (the snapshot still says so: its node is offline)."""


class Cycle(NamedTuple):
    """One observation, and what to say about it."""

    observation: Observation
    warnings: list[str]
    problems: list[Problem]


def world_directory(option: Path | None) -> Path:
    world = option or (Path(os.environ["SUPERVISOR_WORLD"]) if os.environ.get("SUPERVISOR_WORLD")
                       else DEFAULT_WORLD)
    if world.exists() and not world.is_dir():
        raise InputError([Problem(str(world), message="is a file; observers write the world "
                                  "as a directory (give --world a directory)")])
    return world


def run_observer(observe_once: Callable[[], Cycle], world: Path, *, once: bool,
                 interval: float | None) -> None:
    if once and interval is not None:
        raise InputError([Problem("--once", message="excludes --interval")])
    if interval is not None and not 0 < interval < math.inf:
        raise InputError([Problem("--interval", message="must be a positive number of seconds")])

    from supervisor.observe.snapshot import write_snapshot

    def cycle() -> list[Problem]:
        result = observe_once()
        written = write_snapshot(world, result.observation)
        for warning in result.warnings:
            sys.stderr.write(f"warning: {warning}\n")
        nodes = result.observation.nodes.values()
        sys.stdout.write(
            f"{world}: {len(nodes)} node{'s' if len(nodes) != 1 else ''} "
            f"({sum(n.status == 'online' for n in nodes)} online), "
            f"{sum(len(n.services or {}) for n in nodes)} services observed; "
            f"{len(written.written)} files written, {len(written.removed)} removed\n")
        sys.stdout.flush()
        return result.problems

    if interval is None:
        problems = cycle()
        if problems:
            raise ObserveError(problems)
        return
    from supervisor.transitions import Stopper, loop

    def guarded() -> None:
        try:
            problems = cycle()
        except SupervisorError as error:
            problems = error.problems
        for problem in problems:
            sys.stderr.write(f"{problem}\n")
        sys.stderr.flush()

    loop(guarded, interval, Stopper())
