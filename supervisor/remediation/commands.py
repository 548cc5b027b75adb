"""`supervisor remediate`, `hold`, `release`, `holds` and `remediations`.

Thin, like the rest of the CLI: options in, the remediation package's functions out. Heavy
modules are imported inside the commands, to keep start-up fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from supervisor.cli import (
    DEFAULT_CHECKPOINT,
    DEFAULT_EVENTS,
    DEFAULT_REMEDIATIONS,
    Format,
    InventoryOpt,
    MaxAgeOpt,
    NoDefaultRulesOpt,
    NowOpt,
    QuietOpt,
    RemediationsOpt,
    RulesOpt,
    ScenarioArg,
    WorldOpt,
    check_schedule,
    checkpoint_option,
    events_option,
    from_env,
    gather,
    instance_option,
    reporting_errors,
)
from supervisor.errors import SupervisorError

app: typer.Typer = typer.Typer(rich_markup_mode=None)

DEFAULT_HOLDS = Path("/tmp/supervisor-holds.json")
DEFAULT_POLICY = Path("policy")

InstanceOpt = Annotated[
    str | None,
    instance_option("The supervisor whose recommendations to act on, as `run --instance`.",
                    "run's, from the inventory and checkpoint paths"),
]
EventsOpt = Annotated[Path | None, events_option("The event log `run` keeps.")]
HoldsOpt = Annotated[
    Path | None,
    typer.Option("--holds", metavar="PATH", show_default=False,
                 help="The holds file. [env SUPERVISOR_HOLDS; default "
                 "/tmp/supervisor-holds.json]"),
]


@app.command("remediate")
@reporting_errors
def remediate_command(
    scenario: ScenarioArg = None,
    policy: Annotated[
        list[Path] | None,
        typer.Option("--policy", metavar="DIR", show_default=False,
                     help="A policy set (policy/*.yaml); repeat to layer more. No policy, no "
                     "remediation. [env SUPERVISOR_POLICY, several separated by ':'; default "
                     "./policy when it exists]"),
    ] = None,
    execute: Annotated[
        bool, typer.Option("--execute", help="Act. Without it, only print and log the plan."),
    ] = False,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit. The default.")] = False,
    interval: Annotated[
        float | None,
        typer.Option("--interval", metavar="SECONDS", show_default=False,
                     help="A pass every SECONDS until SIGTERM or SIGINT."),
    ] = None,
    watch_changes: Annotated[
        bool, typer.Option("--watch", help="A pass whenever the event log, world or inventory "
                           "change; --interval (default 60) still runs as a heartbeat."),
    ] = False,
    node: Annotated[
        list[str] | None,
        typer.Option("--node", metavar="NAME=ENDPOINT", show_default=False,
                     help="A node and its Docker engine, as for `observe docker`; repeat for "
                     "more nodes. [default: this host, at $DOCKER_HOST or the local socket]"),
    ] = None,
    events: EventsOpt = None,
    checkpoint: Annotated[
        Path | None,
        checkpoint_option("run's checkpoint; only its path is used, to name run's instance."),
    ] = None,
    instance: InstanceOpt = None,
    holds: HoldsOpt = None,
    remediations: RemediationsOpt = None,
    inventory: InventoryOpt = None,
    world: WorldOpt = None,
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    now: NowOpt = None,
    max_age: MaxAgeOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Act on recommendations by policy (dry run by default)."""
    from supervisor.remediation.cycle import Setup, remediate_once
    from supervisor.remediation.policy import PolicySet, load_policies

    check_schedule(once, interval, watch_changes)
    if policy is None and os.environ.get("SUPERVISOR_POLICY"):
        policy = [Path(part) for part in os.environ["SUPERVISOR_POLICY"].split(":") if part]
    if policy is None:
        policy = [DEFAULT_POLICY] if DEFAULT_POLICY.is_dir() else []
    policies = load_policies(policy) if policy else PolicySet()
    history = from_env(remediations, "SUPERVISOR_REMEDIATIONS", DEFAULT_REMEDIATIONS)
    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age, history)
    setup = Setup(
        instance=_instance(instance, inputs.inventory,
                           from_env(checkpoint, "SUPERVISOR_CHECKPOINT", DEFAULT_CHECKPOINT)),
        inputs=inputs,
        events=from_env(events, "SUPERVISOR_EVENTS", DEFAULT_EVENTS),
        holds=from_env(holds, "SUPERVISOR_HOLDS", DEFAULT_HOLDS),
        remediations=history,
        policies=policies, execute=execute, endpoints=_endpoints(node),
    )
    if not policies.policies:
        sys.stderr.write("supervisor remediate: no policy, so nothing is remediated "
                         "(give --policy DIR)\n")

    def one_pass(keep_going: bool) -> None:
        try:
            report = remediate_once(setup)
        except SupervisorError as error:
            if not keep_going:
                raise
            for problem in error.problems:
                sys.stderr.write(f"{problem}\n")
            return
        if not quiet:
            sys.stdout.write(report.text())
            sys.stdout.flush()

    if interval is None and not watch_changes:
        one_pass(False)
        return
    from supervisor.transitions import Stopper, loop
    from supervisor.watching import watch

    stopper = Stopper()
    if watch_changes:
        watched = [setup.events.parent, inputs.inventory,
                   inputs.world if inputs.world.is_dir() else inputs.world.parent]
        ignored = {setup.remediations, setup.lock}
        watch(lambda: one_pass(True), [p for p in watched if p.exists()], ignored,
              interval or 60.0, stopper)
    else:
        loop(lambda: one_pass(True), interval or 60.0, stopper)


def _instance(option: str | None, inventory: Path, checkpoint: Path) -> str:
    from supervisor.errors import InputError, Problem
    from supervisor.transitions import INSTANCE, default_instance

    instance = option or os.environ.get("SUPERVISOR_INSTANCE") or default_instance(
        inventory, checkpoint)
    if not INSTANCE.fullmatch(instance):
        raise InputError([Problem("--instance", message=f"{instance!r} is not a name")])
    return instance


def _endpoints(nodes: list[str] | None) -> dict[str, str]:
    from supervisor.observe.endpoints import local_endpoint, parse_node_options

    return {e.node: e.url for e in (parse_node_options(nodes) if nodes else [local_endpoint()])}


SubjectArg = Annotated[str, typer.Argument(
    metavar="SUBJECT", help="<node>/<service>, a node, or a service name the inventory names "
    "once.")]


def _subject(text: str, inventory: Path | None, *, warn: bool = False) -> str:
    """A bare name is a node, or a service the inventory declares on one node only (as for
    `explain`); without a readable inventory it is taken as a node. With `warn`, a subject the
    inventory does not declare is said on stderr: a hold on a misspelt name holds nothing."""
    from supervisor.errors import InputError, Problem
    from supervisor.inventory import load_inventory

    path = from_env(inventory, "SUPERVISOR_INVENTORY", Path("hosts"))
    if not path.is_dir() or ("/" in text and not warn):
        return text
    try:
        declared = load_inventory(path)
    except SupervisorError:
        return text  # a broken inventory must not stop a person from holding remediation
    subject = text
    if "/" not in text:
        named = sorted(s for s in declared.services if s.split("/", 1)[1] == text)
        candidates = ([text] if text in declared.nodes else []) + named
        if len(candidates) > 1:
            listed = ", ".join(f"{c} (node)" if c == text else c for c in candidates)
            raise InputError([Problem("SUBJECT", message=f"{text!r} is ambiguous: {listed}")])
        subject = named[0] if named and text not in declared.nodes else text
    if warn and subject not in declared.nodes and subject not in declared.services:
        sys.stderr.write(f"warning: the inventory ({path}) declares no node or service "
                         f"{subject!r}: the hold is kept, but holds nothing back until it "
                         "does\n")
    return subject


@app.command("hold")
@reporting_errors
def hold_command(
    subject: SubjectArg,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", show_default=False,
                     help="When the hold lapses by itself (RFC 3339). [default: until released]"),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", metavar="TEXT", help="Why, for the next person."),
    ] = "",
    holds: HoldsOpt = None,
    inventory: InventoryOpt = None,
) -> None:
    """Keep remediation away from a node or service."""
    from supervisor.remediation.cycle import wall_clock
    from supervisor.remediation.holds import place

    placed = place(from_env(holds, "SUPERVISOR_HOLDS", DEFAULT_HOLDS),
                   _subject(subject, inventory, warn=True), wall_clock(),
                   until=until, reason=reason)
    lapse = f" until {placed.until}" if placed.until else " until released"
    sys.stdout.write(f"held {placed.subject}{lapse} (by {placed.by})\n")


@app.command("release")
@reporting_errors
def release_command(subject: SubjectArg, holds: HoldsOpt = None,
                    inventory: InventoryOpt = None) -> None:
    """Remove a hold."""
    from supervisor.errors import InputError, Problem
    from supervisor.remediation.cycle import wall_clock
    from supervisor.remediation.holds import release

    path = from_env(holds, "SUPERVISOR_HOLDS", DEFAULT_HOLDS)
    subject = _subject(subject, inventory)
    if release(path, subject, wall_clock()) is None:
        raise InputError([Problem(str(path), message=f"no hold on {subject!r}")])
    sys.stdout.write(f"released {subject}\n")


@app.command("holds")
@reporting_errors
def holds_command(
    holds: HoldsOpt = None,
    output: Annotated[Format, typer.Option("--format", help="For people or programs.")]
    = Format.table,
) -> None:
    """List the holds in force, with who, when and why."""
    import json

    from supervisor.remediation.cycle import wall_clock
    from supervisor.remediation.holds import read_holds

    now = wall_clock()
    active = [hold for _, hold in sorted(
        read_holds(from_env(holds, "SUPERVISOR_HOLDS", DEFAULT_HOLDS)).items()) if hold.active(now)]
    if output is Format.json:
        sys.stdout.write(json.dumps([{"subject": hold.subject, **hold.to_json()}
                                     for hold in active], indent=2) + "\n")
        return
    if not active:
        sys.stdout.write("no holds\n")
    for hold in active:
        lapse = hold.until or "released"
        why = f": {hold.reason}" if hold.reason else ""
        sys.stdout.write(f"{hold.subject}  by {hold.by} at {hold.at}, until {lapse}{why}\n")


@app.command("remediations")
@reporting_errors
def remediations_command(
    events: EventsOpt = None,
    instance: Annotated[
        str | None,
        typer.Option("--instance", metavar="NAME", show_default=False,
                     help="Only this supervisor's. [default: every instance's]"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", min=1,
                                       help="Show the N most recent attempts.")] = 20,
    output: Annotated[Format, typer.Option("--format", help="For people or programs.")]
    = Format.table,
) -> None:
    """List recent remediations and their outcome."""
    import json

    from supervisor.eventlog import EventLog
    from supervisor.remediation.history import parsed, replay

    log = EventLog(from_env(events, "SUPERVISOR_EVENTS", DEFAULT_EVENTS))
    attempts = list(replay(parsed(log, instance), instance).attempts.values())[-limit:]
    if output is Format.json:
        sys.stdout.write(json.dumps([{**a.to_document(), "subject": a.subject,
                                      "stage": a.stage, "verify_by": a.verify_by}
                                     for a in attempts], indent=2, ensure_ascii=False) + "\n")
        return
    if not attempts:
        sys.stdout.write("no remediations\n")
    for attempt in attempts:
        outcome = attempt.stage.removeprefix("remediation_")
        if attempt.in_flight:
            outcome += f", verify by {attempt.verify_by}"
        detail = f": {attempt.detail}" if attempt.detail else ""
        sys.stdout.write(f"{attempt.started_at}  {attempt.id}  {attempt.subject.get('id')}  "
                         f"{attempt.policy} ({attempt.executor})  {outcome}{detail}\n")
