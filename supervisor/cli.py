"""The command line. Thin: it parses options, calls the core, and picks a reporter.

What every command shares lives here: the app, the input options and their defaults, how they
resolve, and how errors are reported. The commands themselves live in their own modules
(`commands/` for the top-level concerns, `<subpackage>/commands` beside the rest), registered by
name in COMMANDS at the end and imported only when named: `supervisor eval` pays for eval's
module, not for every group's. Heavy modules (yaml, jsonschema, jmespath) are imported inside the
commands, so that `--help` and `--version` stay fast.
"""

from __future__ import annotations

import functools
import gc
import math
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from typer.core import TyperGroup

from supervisor import __version__
from supervisor.errors import SupervisorError

if TYPE_CHECKING:
    from typer import _click as click  # typer's own copy of click, which its classes use

    from supervisor.inputs import Inputs


class LazyCommands(TyperGroup):
    """The top-level commands, each built from its module (COMMANDS, below) the first time it
    is named: to run it, or to list it in help, completion or a typo's suggestions."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.commands[cmd_name] = build_command(cmd_name, COMMANDS[cmd_name])
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]
                        ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in COMMANDS:  # a typo: suggest from all, not from those built
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="supervisor",
    help="Compares the homelab inventory with the observed world and recommends what to "
    "reconcile. It never changes anything.",
    cls=LazyCommands,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
)

DEFAULT_INVENTORY = Path("hosts")
DEFAULT_WORLD = Path("/opt/homelab/world")
DEFAULT_EVENTS = Path("/tmp/agent-events.log")
DEFAULT_CHECKPOINT = Path("/tmp/supervisor-checkpoint.json")
DEFAULT_REMEDIATIONS = Path("/tmp/supervisor-remediations.json")
# scenarios.EXPECT_FILE, spelt here too so that a scenario directory without one does not import
# the scenario runner (tests/test_startup.py keeps the two equal).
EXPECT_FILE = "expect.yaml"


class Format(StrEnum):
    table = "table"
    json = "json"


class FailOn(StrEnum):
    degraded = "degraded"
    reconciling = "reconciling"
    unstable = "unstable"


ScenarioArg = Annotated[
    Path | None,
    typer.Argument(
        metavar="[SCENARIO_DIR]", show_default=False,
        help="A scenario directory: shorthand for --inventory DIR/hosts --world DIR/world, "
        "or for the world, rules and time its expect.yaml names.",
    ),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory", metavar="DIR", show_default=False,
        help="The inventory: one <node>/services.yaml per node. "
        "[env SUPERVISOR_INVENTORY; default ./hosts]",
    ),
]
WorldOpt = Annotated[
    Path | None,
    typer.Option(
        "--world", metavar="PATH", show_default=False,
        help="The world snapshot: the observer's directory, or one .json/.yaml file. "
        "[env SUPERVISOR_WORLD; default /opt/homelab/world]",
    ),
]
RulesOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--rules", metavar="DIR", show_default=False,
        help="A rule set layered over the defaults; repeat to add more, in order. "
        "[env SUPERVISOR_RULES, several separated by ':']",
    ),
]
NoDefaultRulesOpt = Annotated[
    bool,
    typer.Option("--no-default-rules", help="Start from no rules instead of the built-in ones."),
]
NowOpt = Annotated[
    str | None,
    typer.Option(
        "--now", metavar="TIME", show_default=False,
        help="Evaluate as of this RFC 3339 time. [default: the world's observed_at]",
    ),
]
MaxAgeOpt = Annotated[
    float | None,
    typer.Option(
        "--max-age", metavar="SECONDS", show_default=False,
        help="A world older than this is stale. [default: the rules' max_world_age_seconds, 600]",
    ),
]
MaxSkewOpt = Annotated[
    float | None,
    typer.Option(
        "--max-skew", metavar="SECONDS", show_default=False,
        help="A timestamp further in the future than this is not trusted (a world observed "
        "then, a node last seen then). [default: the rules' max_clock_skew_seconds, 300]",
    ),
]
RemediationsOpt = Annotated[
    Path | None,
    typer.Option("--remediations", metavar="PATH", show_default=False,
                 help="The remediation history `supervisor remediate` keeps, which rules read "
                 "as `remediations`; a missing file is an empty history. [env "
                 "SUPERVISOR_REMEDIATIONS; default /tmp/supervisor-remediations.json]"),
]
FormatOpt = Annotated[Format, typer.Option("--format", help="Output for people or for programs.")]
MetricsOpt = Annotated[
    Path | None,
    typer.Option("--metrics-file", metavar="PATH", show_default=False,
                 help="Also write Prometheus metrics there, for node_exporter's textfile "
                 "collector (a .prom file in its directory)."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
FailOnOpt = Annotated[
    FailOn | None,
    typer.Option("--fail-on", show_default=False,
                 help="Exit 1 when the summary state is this bad or worse."),
]


# The options `run` keeps its state with, which `remediate` names too, to find what run wrote;
# each says in its own words what it does with them.
def events_option(what: str) -> Any:
    return typer.Option("--events", metavar="PATH", show_default=False,
                        help=f"{what} [env SUPERVISOR_EVENTS; default {DEFAULT_EVENTS}]")


def checkpoint_option(what: str) -> Any:
    return typer.Option("--checkpoint", metavar="PATH", show_default=False,
                        help=f"{what} [env SUPERVISOR_CHECKPOINT; default {DEFAULT_CHECKPOINT}]")


def instance_option(what: str, default: str) -> Any:
    return typer.Option("--instance", metavar="NAME", show_default=False,
                        help=f"{what} [env SUPERVISOR_INSTANCE; default: {default}]")


def from_env(option: Path | None, variable: str, default: Path) -> Path:
    """An option's path: the option, then $variable, then the default."""
    if option is not None:
        return option
    return Path(os.environ[variable]) if os.environ.get(variable) else default


def check_schedule(once: bool, interval: float | None, watch_changes: bool) -> None:
    """`--once`, `--interval` and `--watch`, as `run` and `remediate` both take them: --once is
    the default spelt out, so it excludes the other two, and an interval is a positive number."""
    from supervisor.errors import InputError, Problem

    if once and (interval is not None or watch_changes):
        raise InputError([Problem("--once", message="excludes --interval and --watch")])
    if interval is not None and not 0 < interval < math.inf:
        raise InputError([Problem("--interval", message="must be a positive number of seconds")])


P = ParamSpec("P")
R = TypeVar("R")


def reporting_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Bad input or usage: every problem on stderr, exit code 2, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except SupervisorError as error:
            from supervisor.terminal import printable

            for problem in error.problems:
                sys.stderr.write(f"{printable(str(problem))}\n")
            count = len(error.problems)
            sys.stderr.write(f"supervisor: {count} problem{'s' if count != 1 else ''} found\n")
            raise typer.Exit(2) from None

    return wrapper


def gather(
    scenario: Path | None, inventory: Path | None, world: Path | None,
    rules: list[Path] | None, no_default_rules: bool, now: str | None, max_age: float | None,
    remediations: Path | None = None, max_skew: float | None = None,
) -> Inputs:
    """Resolves the input options: explicit option, then scenario directory, then environment."""
    from supervisor.errors import InputError, Problem
    from supervisor.inputs import Inputs

    if scenario is not None and not scenario.is_dir():
        raise InputError([Problem(str(scenario), message="scenario directory does not exist")])
    env = os.environ
    rules = rules or env_rules()
    if scenario is not None and (scenario / EXPECT_FILE).is_file():
        from supervisor.scenarios import load_expectation

        # The scenario's own world, rules and time, so that a failing scenario can be
        # evaluated and explained exactly as `supervisor test` saw it; options still win.
        spec = load_expectation(scenario).inputs()
        return Inputs(
            inventory=inventory or spec.inventory,
            world=world or spec.world,
            rules=(*spec.rules, *(rules or ())),
            default_rules=spec.default_rules and not no_default_rules,
            now=now or spec.now,
            max_age=spec.max_age if max_age is None else max_age,
            max_skew=max_skew,
            remediations=remediations or spec.remediations,
        )

    def pick(option: Path | None, within: str, variable: str, default: Path) -> Path:
        if option is not None:
            return option
        if scenario is not None:
            return scenario / within
        return Path(env[variable]) if env.get(variable) else default

    return Inputs(
        inventory=pick(inventory, "hosts", "SUPERVISOR_INVENTORY", DEFAULT_INVENTORY),
        world=pick(world, "world", "SUPERVISOR_WORLD", DEFAULT_WORLD),
        rules=tuple(rules or ()),
        default_rules=not no_default_rules,
        now=now,
        max_age=max_age,
        max_skew=max_skew,
        remediations=_history(remediations, scenario),
    )


def _history(option: Path | None, scenario: Path | None) -> Path | None:
    """A scenario carries its own history, or none: the machine's must not leak into it."""
    if option is not None:
        return option
    if scenario is not None:
        return scenario / "remediations.json"
    variable = os.environ.get("SUPERVISOR_REMEDIATIONS")
    return Path(variable) if variable else DEFAULT_REMEDIATIONS



def env_rules() -> list[Path]:
    return [Path(part) for part in os.environ.get("SUPERVISOR_RULES", "").split(":") if part]


def error_metrics(path: Path | None, error: SupervisorError, started: float) -> None:
    """Bad input still leaves a metrics file, so that an alert can fire on it."""
    if path is None:
        return
    from supervisor.metrics import Snapshot, write_metrics

    write_metrics(path, Snapshot(finished_at=time.time(), input_problems=len(error.problems),
                                 duration_seconds=time.monotonic() - started))


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"supervisor {__version__}\n")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def root(
    context: typer.Context,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Compares the homelab inventory with the observed world and recommends what to reconcile."""
    if context.invoked_subcommand is None:  # asking what there is is not a usage error
        sys.stdout.write(context.get_help() + "\n")
        raise typer.Exit(0)


# Every top-level command: its name -> "module:attribute", a command function (wrapped in the
# error reporting here) or a typer app (a group under that name, or, when the app has a command of
# that name, that command alone). The modules import their options from above; they are imported
# only when their command is named. The order here is the order `--help` lists them in.
COMMANDS: dict[str, str] = {
    "eval": "supervisor.commands.evaluation:eval_command",
    "explain": "supervisor.commands.evaluation:explain_command",
    "validate": "supervisor.commands.evaluation:validate_command",
    "test": "supervisor.commands.evaluation:test_command",
    "run": "supervisor.commands.run:run_command",
    "observe": "supervisor.observe.commands:app",
    "import": "supervisor.importer:app",
    "remediate": "supervisor.remediation.commands:app",
    "hold": "supervisor.remediation.commands:app",
    "release": "supervisor.remediation.commands:app",
    "holds": "supervisor.remediation.commands:app",
    "remediations": "supervisor.remediation.commands:app",
    "notify": "supervisor.notify.commands:app",
}


def build_command(name: str, where: str) -> click.Command:
    """The click command `name` stands for, built by typer as `app.command` and `app.add_typer`
    would have built it at start-up."""
    import importlib

    module, attribute = where.split(":")
    target = getattr(importlib.import_module(module), attribute)
    if not isinstance(target, typer.Typer):
        holder = typer.Typer(rich_markup_mode=None, add_completion=False)
        holder.command(name)(reporting_errors(target))
        return typer.main.get_group(holder).commands[name]
    if any(command.name == name for command in target.registered_commands):
        return _merged(target).commands[name]  # the app's commands stand at the top level
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    holder.add_typer(target, name=name)
    return typer.main.get_group(holder).commands[name]


@functools.cache
def _merged(target: typer.Typer) -> TyperGroup:
    """An app added without a name, built once for all its commands."""
    holder = typer.Typer(rich_markup_mode=None, add_completion=False)
    holder.add_typer(target)
    return typer.main.get_group(holder)


def main(argv: list[str] | None = None) -> Any:
    """The `supervisor` program; the process ends when this returns."""
    # What start-up made (modules, typer's machinery) lives as long as the process: frozen, no
    # collection walks it again; the program's entry paused collecting while it was made.
    gc.freeze()
    gc.enable()
    try:
        return app(args=argv, prog_name="supervisor")
    finally:
        # The interpreter's last collection at exit would walk every object left (for a small
        # eval, most of the time it takes to exit) to free memory that exiting frees anyway;
        # frozen objects are skipped. Files are still flushed and closed as they are freed.
        gc.freeze()
