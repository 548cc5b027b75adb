"""`supervisor eval`, `explain`, `validate` and `test`: the commands that evaluate and print.

Thin, like the rest of the CLI: options in, the core's functions out. `supervisor.cli` registers
them, wrapped in its error reporting. Heavy modules are imported inside the commands, to keep
start-up fast.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from supervisor.cli import (
    DEFAULT_INVENTORY,
    FailOnOpt,
    Format,
    FormatOpt,
    InventoryOpt,
    MaxAgeOpt,
    MaxSkewOpt,
    MetricsOpt,
    NoDefaultRulesOpt,
    NowOpt,
    QuietOpt,
    RemediationsOpt,
    RulesOpt,
    ScenarioArg,
    WorldOpt,
    env_rules,
    error_metrics,
    gather,
)
from supervisor.errors import SupervisorError


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
        error_metrics(metrics_file, error, started)
        raise
    finally:
        progress.done()
    # Everything loaded was allocated with the collector paused, so its first pass would walk
    # all of it (a third of a second at 100,000 services) to free nothing: this command ends
    # once it has printed.
    gc.freeze()
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

        inputs = Inputs(inventory=Path(), world=Path(), rules=tuple(rules or env_rules()),
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
    return bool(rules or env_rules()) and not named and not DEFAULT_INVENTORY.exists()




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

    rules = rules or env_rules()
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
