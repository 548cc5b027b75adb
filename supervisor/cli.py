"""The command line. Thin: it parses options, calls the core, and picks a reporter.

Heavy modules (yaml, jsonschema, jmespath) are imported inside the commands, so that `--help`
and `--version` stay fast.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer

from supervisor import __version__
from supervisor.errors import SupervisorError
from supervisor.importer import app as import_app
from supervisor.notify.commands import app as notify_app
from supervisor.observe.commands import app as observe_app

if TYPE_CHECKING:
    from supervisor.inputs import Inputs

app = typer.Typer(
    name="supervisor",
    help="Compares the homelab inventory with the observed world and recommends what to "
    "reconcile. It never changes anything.",
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=True,
)

DEFAULT_INVENTORY = Path("hosts")
DEFAULT_WORLD = Path("/opt/homelab/world")
DEFAULT_EVENTS = Path("/tmp/agent-events.log")
DEFAULT_CHECKPOINT = Path("/tmp/supervisor-checkpoint.json")
DEFAULT_REMEDIATIONS = Path("/tmp/supervisor-remediations.json")


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
    rules = rules or _env_rules()
    if scenario is not None:
        from supervisor.scenarios import EXPECT_FILE, load_expectation

        if (scenario / EXPECT_FILE).is_file():
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


class _Progress:
    """A count of world records on stderr while they load: on a terminal only, and only for
    worlds large enough to take a while."""

    AFTER = 5000  # records

    def __init__(self) -> None:
        self.shown = False

    def __call__(self, count: int) -> None:
        if count >= self.AFTER:
            sys.stderr.write(f"\rreading the world: {count} records")
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")  # clear the progress line
            sys.stderr.flush()


def _error_metrics(path: Path | None, error: SupervisorError, started: float) -> None:
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


@app.command("eval")
@reporting_errors
def eval_command(
    scenario: ScenarioArg = None,
    inventory: InventoryOpt = None,
    world: WorldOpt = None,
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    now: NowOpt = None,
    max_age: MaxAgeOpt = None,
    max_skew: MaxSkewOpt = None,
    remediations: RemediationsOpt = None,
    output: FormatOpt = Format.table,
    fail_on: FailOnOpt = None,
    metrics_file: MetricsOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Print the recommendations and the summary state."""
    from supervisor.engine import reached
    from supervisor.inputs import evaluate_inputs
    from supervisor.report import render_table, to_json
    from supervisor.terminal import use_colour

    started = time.monotonic()
    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age,
                    remediations, max_skew)
    progress = _Progress()
    try:
        loaded, evaluation = evaluate_inputs(
            inputs, progress=progress if sys.stderr.isatty() else None)
    except SupervisorError as error:
        _error_metrics(metrics_file, error, started)
        raise
    finally:
        progress.done()
    if metrics_file is not None:
        from supervisor.metrics import Snapshot, write_metrics

        write_metrics(metrics_file, Snapshot.of(evaluation, loaded.state.world.observed_at,
                                                time.monotonic() - started))
    if not quiet and output is Format.json:
        sys.stdout.write(to_json(evaluation.to_json()))
    elif not quiet:
        sys.stdout.write(render_table(evaluation, colour=use_colour(sys.stdout)))
    if fail_on is not None and reached(evaluation.summary, fail_on.value):
        raise typer.Exit(1)


@app.command("explain")
@reporting_errors
def explain_command(
    subject: Annotated[
        str, typer.Argument(metavar="SUBJECT", help="<node>/<service>, a service name, a node "
                            "name, or 'world' (node:, service:, world: tell them apart).")
    ],
    scenario: ScenarioArg = None,
    inventory: InventoryOpt = None,
    world: WorldOpt = None,
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    now: NowOpt = None,
    max_age: MaxAgeOpt = None,
    max_skew: MaxSkewOpt = None,
    remediations: RemediationsOpt = None,
    output: FormatOpt = Format.table,
    context: Annotated[
        bool, typer.Option("--context", help="Print the document the matchers see, as JSON."),
    ] = False,
) -> None:
    """Show why each rule fired, did not match, or was overruled."""
    from supervisor.engine import evaluate
    from supervisor.explain import explain, resolve
    from supervisor.inputs import load
    from supervisor.report import render_explanation, to_json
    from supervisor.terminal import use_colour

    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age,
                    remediations, max_skew)
    loaded = load(inputs)
    target = resolve(loaded.state, subject)  # before evaluating: a typo should fail fast
    evaluation = evaluate(loaded.state, loaded.rules, trace={target})
    explanation = explain(loaded.state, loaded.rules, evaluation, target)
    if context:
        sys.stdout.write(to_json(explanation.context))
    elif output is Format.json:
        sys.stdout.write(to_json(explanation.to_json()))
    else:
        sys.stdout.write(render_explanation(explanation, colour=use_colour(sys.stdout)))


@app.command("validate")
@reporting_errors
def validate_command(
    scenario: ScenarioArg = None,
    inventory: InventoryOpt = None,
    world: WorldOpt = None,
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    now: NowOpt = None,
    max_age: MaxAgeOpt = None,
    max_skew: MaxSkewOpt = None,
    remediations: RemediationsOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Also lint the rules: paths not in the document, unknown "
                     "or non-numeric params, rules that can never fire."),
    ] = False,
    rules_only: Annotated[
        bool,
        typer.Option("--rules-only", help="Check the rules alone, without an inventory or a "
                     "world (also what happens when none is given and ./hosts does not exist)."),
    ] = False,
) -> None:
    """Check inventory, world and rules; report every problem."""
    from supervisor.engine import evaluate
    from supervisor.errors import Problem, RuleError
    from supervisor.inputs import load
    from supervisor.terminal import counted

    if rules_only or _rules_alone(scenario, inventory, world, rules):
        from supervisor.inputs import Inputs
        from supervisor.rules import load_rules

        inputs = Inputs(inventory=Path(), world=Path(), rules=tuple(rules or _env_rules()),
                        default_rules=not no_default_rules, max_age=max_age)
        rule_set = load_rules(inputs.rule_sources(), params=inputs.params())
        if strict:
            from supervisor.lint import lint

            if found_alone := lint(rule_set):
                raise RuleError(found_alone)
        enabled = sum(rule.enabled for rule in rule_set.rules)
        sys.stdout.write(f"valid: {counted(enabled, 'rule')}, checked alone (no inventory or "
                         f"world){'' if strict else '; --strict also lints them'}\n")
        return

    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age,
                    remediations, max_skew)
    loaded = load(inputs)
    found: list[Problem] = []
    if strict:
        from supervisor.lint import lint

        # Lint first: a typo it names is usually why a matcher fails on real data below.
        found.extend(lint(loaded.rules))
    try:
        # Evaluating too catches matchers that only fail on real data (a type error, say).
        from supervisor.limits import current

        evaluate(loaded.state, loaded.rules, limits=current())
    except RuleError as error:
        found.extend(error.problems)
    if found:
        raise RuleError(found)
    state = loaded.state
    sys.stdout.write(
        f"valid: {counted(len(state.inventory.nodes), 'node')} and "
        f"{counted(len(state.inventory.services), 'service')} declared, "
        f"{counted(len(state.world.services), 'service')} observed, "
        f"{counted(sum(rule.enabled for rule in loaded.rules.rules), 'rule')}\n"
    )


def _rules_alone(scenario: Path | None, inventory: Path | None, world: Path | None,
                 rules: list[Path] | None) -> bool:
    """`validate --rules DIR` with nothing else to read: check the rule files alone, as
    `promtool check rules` does, instead of failing on a missing ./hosts."""
    env = os.environ
    named = scenario or inventory or world or env.get("SUPERVISOR_INVENTORY") \
        or env.get("SUPERVISOR_WORLD")
    return bool(rules or _env_rules()) and not named and not DEFAULT_INVENTORY.exists()


def _env_rules() -> list[Path]:
    return [Path(part) for part in os.environ.get("SUPERVISOR_RULES", "").split(":") if part]


@app.command("test")
@reporting_errors
def test_command(
    scenarios: Annotated[
        list[Path] | None,
        typer.Argument(metavar="[SCENARIO_DIR]...", show_default=False,
                       help="Scenario directories, or directories of them. [default: ./fixtures]"),
    ] = None,
    rules: RulesOpt = None,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", metavar="FILE", help="Also write the results as JUnit XML."),
    ] = None,
    coverage: Annotated[
        bool, typer.Option("--coverage", help="List the rules that fired in no scenario."),
    ] = False,
    min_coverage: Annotated[
        float | None,
        typer.Option("--min-coverage", metavar="PCT", show_default=False,
                     help="Fail when fewer than PCT percent of the rules fired somewhere."),
    ] = None,
    update: Annotated[
        bool,
        typer.Option("--update", help="Accept the current recommendations: rewrite each "
                     "failing expect.yaml in place, comments kept (showing the diff)."),
    ] = False,
) -> None:
    """Run scenarios (hosts/, world/, expect.yaml) and compare."""
    from supervisor import testrun

    rules = rules or _env_rules()
    directories = testrun.discover(scenarios or [Path("fixtures")])
    report = testrun.run_all(directories, extra_rules=tuple(rules or ()))
    if update:
        from supervisor.accept import accept

        for result in report.results:
            accepted = accept(result)
            sys.stdout.write(accepted.diff)
            if accepted.refused:
                sys.stderr.write(f"{accepted.refused}\n")
        report = testrun.run_all(directories, extra_rules=tuple(rules or ()))
    sys.stdout.write(testrun.render(report))
    if coverage or min_coverage is not None:
        sys.stdout.write(testrun.render_coverage(report))
    if junit is not None:
        testrun.write_junit(report, junit)
    if report.errors:
        raise typer.Exit(2)
    covered = report.coverage()
    if report.failed or (min_coverage is not None and (covered is None or covered < min_coverage)):
        raise typer.Exit(1)


@app.command("run")
@reporting_errors
def run_command(
    scenario: ScenarioArg = None,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit (for cron and "
                                       "systemd timers). The default.")] = False,
    interval: Annotated[
        float | None,
        typer.Option("--interval", metavar="SECONDS", show_default=False,
                     help="Run every SECONDS on a fixed schedule until SIGTERM or SIGINT."),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", metavar="PATH", show_default=False,
                     help="The append-only event log. [env SUPERVISOR_EVENTS; default "
                     "/tmp/agent-events.log]"),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", metavar="PATH", show_default=False,
                     help="The checkpoint. [env SUPERVISOR_CHECKPOINT; default "
                     "/tmp/supervisor-checkpoint.json]"),
    ] = None,
    inventory: InventoryOpt = None,
    world: WorldOpt = None,
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    now: NowOpt = None,
    max_age: MaxAgeOpt = None,
    max_skew: MaxSkewOpt = None,
    remediations: RemediationsOpt = None,
    watch_changes: Annotated[
        bool,
        typer.Option("--watch", help="Run again whenever the inventory, world or rules change; "
                     "--interval (default 60) still runs as a heartbeat."),
    ] = False,
    metrics_file: MetricsOpt = None,
    quiet: QuietOpt = False,
    instance: Annotated[
        str | None,
        typer.Option("--instance", metavar="NAME", show_default=False,
                     help="This supervisor's name on its log lines; it reads only its own, so "
                     "several may share a log. [env SUPERVISOR_INSTANCE; default: from the "
                     "inventory and checkpoint paths]"),
    ] = None,
    lock_timeout: Annotated[
        float,
        typer.Option("--lock-timeout", metavar="SECONDS",
                     help="Wait at most this long for the checkpoint's and the log's locks."),
    ] = 30.0,
) -> None:
    """Evaluate now; append what changed to the event log."""
    from supervisor.errors import InputError, Problem
    from supervisor.transitions import (
        INSTANCE,
        Paths,
        RunReport,
        Stopper,
        default_instance,
        loop,
        run_once,
    )
    from supervisor.watching import watch

    if once and (interval is not None or watch_changes):
        raise InputError([Problem("--once", message="excludes --interval and --watch")])
    if interval is not None and not 0 < interval < math.inf:
        raise InputError([Problem("--interval", message="must be a positive number of seconds")])
    if not 0 <= lock_timeout < math.inf:
        raise InputError([Problem("--lock-timeout", message="must be a number of seconds, 0 "
                                  "or more")])
    for option, value in (("--events", events), ("--checkpoint", checkpoint)):
        if value is not None and str(value) in ("", "."):  # typer reads "" as "."
            raise InputError([Problem(option, message="names no file")])
    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age,
                    remediations, max_skew)
    env = os.environ
    paths = Paths(
        events=events or Path(env.get("SUPERVISOR_EVENTS") or DEFAULT_EVENTS),
        checkpoint=checkpoint or Path(env.get("SUPERVISOR_CHECKPOINT") or DEFAULT_CHECKPOINT),
    )
    instance = instance or env.get("SUPERVISOR_INSTANCE") or default_instance(
        inputs.inventory, paths.checkpoint)
    if not INSTANCE.fullmatch(instance):
        raise InputError([Problem("--instance", message=f"{instance!r} is not a name: up to 64 "
                                  "letters, digits and . _ : @ -, starting with a letter or "
                                  "digit")])

    def warn(message: str) -> None:
        from supervisor.terminal import printable

        sys.stderr.write(f"{printable(message)}\n")  # problems quote the inputs

    def report(result: RunReport, started: float) -> None:
        if metrics_file is not None:
            from supervisor.metrics import write_metrics

            write_metrics(metrics_file, result.snapshot(time.monotonic() - started))
        if not quiet:
            sys.stdout.write(f"{result.line()}\n")
            sys.stdout.flush()

    if interval is None and not watch_changes:
        started = time.monotonic()
        try:
            report(run_once(inputs, paths, instance=instance, warn=warn,
                            lock_timeout=lock_timeout), started)
        except SupervisorError as error:
            _error_metrics(metrics_file, error, started)
            raise
        return
    from supervisor.eventlog import EventLog
    from supervisor.retry import Retrying

    stopper = Stopper()
    retrying = Retrying(EventLog(paths.events, lock_timeout=lock_timeout,
                                 cancelled=lambda: stopper.stopping),
                        instance, interval or 60.0, warn, lambda: stopper.stopping,
                        stopper.sleep_until)

    # Watching, the process keeps its inputs and evaluation and redoes only what changed.
    kept = None
    if watch_changes:
        from supervisor.incremental import Incremental

        kept = Incremental()

    def attempt() -> None:
        started = time.monotonic()
        result = run_once(inputs, paths, instance=instance, warn=warn, keep_going=True,
                          lock_timeout=lock_timeout, cancelled=lambda: stopper.stopping,
                          source=kept)
        for problem in result.problems:
            warn(str(problem))
        report(result, started)

    def cycle() -> None:
        retrying(attempt)  # never exits on an operational error: reports, backs off, retries

    if watch_changes:
        watched = [inputs.inventory, inputs.world if inputs.world.is_dir() else
                   inputs.world.parent, *inputs.rules]
        ignored = {paths.events, paths.checkpoint, paths.lock}
        if metrics_file is not None:
            ignored.add(metrics_file)
        watch(cycle, [p for p in watched if p.exists()], ignored, interval or 60.0, stopper,
              noticed=kept.notice if kept is not None else None)
    else:
        loop(cycle, interval or 60.0, stopper)


app.add_typer(observe_app, name="observe")
app.add_typer(import_app, name="import")
from supervisor.remediation.commands import app as remediation_app

app.add_typer(remediation_app)
app.add_typer(notify_app, name="notify")


def main(argv: list[str] | None = None) -> Any:
    return app(args=argv, prog_name="supervisor")
