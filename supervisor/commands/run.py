"""`supervisor run`: evaluate, once or on a schedule, and append what changed to the event log.

Thin, like the rest of the CLI: options in, `transitions`' functions out. `supervisor.cli`
registers it, wrapped in its error reporting. Heavy modules are imported inside the command, to
keep start-up fast.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from supervisor.cli import (
    DEFAULT_CHECKPOINT,
    DEFAULT_EVENTS,
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
    check_schedule,
    checkpoint_option,
    error_metrics,
    events_option,
    from_env,
    gather,
    instance_option,
)
from supervisor.errors import SupervisorError


def run_command(
    scenario: ScenarioArg = None,
    once: Annotated[bool, typer.Option("--once", help="Run once and exit (for cron and "
                                       "systemd timers). The default.")] = False,
    interval: Annotated[
        float | None,
        typer.Option("--interval", metavar="SECONDS", show_default=False,
                     help="Run every SECONDS on a fixed schedule until SIGTERM or SIGINT."),
    ] = None,
    events: Annotated[Path | None, events_option("The append-only event log.")] = None,
    checkpoint: Annotated[Path | None, checkpoint_option("The checkpoint.")] = None,
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
        instance_option("This supervisor's name on its log lines; it reads only its own, so "
                        "several may share a log.", "from the inventory and checkpoint paths"),
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

    check_schedule(once, interval, watch_changes)
    if not 0 <= lock_timeout < math.inf:
        raise InputError([Problem("--lock-timeout", message="must be a number of seconds, 0 "
                                  "or more")])
    for option, value in (("--events", events), ("--checkpoint", checkpoint)):
        if value is not None and str(value) in ("", "."):  # typer reads "" as "."
            raise InputError([Problem(option, message="names no file")])
    inputs = gather(scenario, inventory, world, rules, no_default_rules, now, max_age,
                    remediations, max_skew)
    paths = Paths(
        events=from_env(events, "SUPERVISOR_EVENTS", DEFAULT_EVENTS),
        checkpoint=from_env(checkpoint, "SUPERVISOR_CHECKPOINT", DEFAULT_CHECKPOINT),
    )
    instance = instance or os.environ.get("SUPERVISOR_INSTANCE") or default_instance(
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
                            lock_timeout=lock_timeout, at_a_glance=metrics_file is None),
                   started)
        except SupervisorError as error:
            error_metrics(metrics_file, error, started)
            raise
        return
    from supervisor.checkpoint import Kept
    from supervisor.eventlog import EventLog
    from supervisor.retry import Retrying

    stopper = Stopper()
    retrying = Retrying(EventLog(paths.events, lock_timeout=lock_timeout,
                                 cancelled=lambda: stopper.stopping),
                        instance, interval or 60.0, warn, lambda: stopper.stopping,
                        stopper.sleep_until)

    # A heartbeat with nothing new reads neither the checkpoint nor (watching) the inputs again:
    # watching, the process keeps its inputs and evaluation and redoes only what changed.
    checkpoint_kept = Kept()
    kept = None
    if watch_changes:
        from supervisor.incremental import Incremental

        kept = Incremental()

    def attempt() -> None:
        started = time.monotonic()
        result = run_once(inputs, paths, instance=instance, warn=warn, keep_going=True,
                          lock_timeout=lock_timeout, cancelled=lambda: stopper.stopping,
                          source=kept, kept=checkpoint_kept)
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
        # Its runs write nothing under the inputs but its own files: watched from their start.
        watch(cycle, [p for p in watched if p.exists()], ignored, interval or 60.0, stopper,
              noticed=kept.notice if kept is not None else None, early=True)
    else:
        loop(cycle, interval or 60.0, stopper)

