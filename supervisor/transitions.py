"""`supervisor run`: evaluate, compare with the checkpoint, append only what changed.

A run is a transition, as Alertmanager's notification log does it: a new recommendation opens
(its reconcile event type), a changed one (event, action or severity) opens again with the new
values, one that no longer holds is `reconcile_resolved`. An unchanged run appends nothing.
While the world is stale nothing is resolved: nothing derived from it can be trusted.

Runs sharing a checkpoint serialise on a lock file beside it; the log has its own lock for the
append, since other programs may write to it too.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from supervisor.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from supervisor.engine import Evaluation, Recommendation
from supervisor.errors import Problem, SupervisorError
from supervisor.eventlog import ERROR, RESOLVED, SOURCE, SUMMARY, EventLog, LogState, event_id
from supervisor.inputs import Inputs, digest, evaluate_inputs
from supervisor.metrics import Snapshot
from supervisor.safefile import locked
from supervisor.timestamps import format_time, parse_time


@dataclass(frozen=True)
class Paths:
    events: Path
    checkpoint: Path

    @property
    def lock(self) -> Path:
        return self.checkpoint.with_name(self.checkpoint.name + ".lock")


@dataclass
class RunReport:
    run_id: str
    now: str
    summary: str | None = None
    open: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # transition type -> lines appended
    skipped: bool = False
    problems: list[Problem] = field(default_factory=list)
    observed_at: str | None = None  # of the world the open recommendations come from
    recommendations: list[tuple[str, str, str]] = field(default_factory=list)  # open ones

    def snapshot(self, duration: float) -> Snapshot:
        age = None
        if self.observed_at is not None:
            age = (parse_time(self.now) - parse_time(self.observed_at)).total_seconds()
        return Snapshot(summary=self.summary, recommendations=self.recommendations,
                        world_age_seconds=age, finished_at=time.time(),
                        duration_seconds=duration, input_problems=len(self.problems))

    def line(self) -> str:
        if self.problems:
            return f"{self.now} run {self.run_id}: input problems, state kept"
        if self.skipped:
            return f"{self.now} run {self.run_id}: inputs unchanged, nothing to do"
        changes = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))
        return (f"{self.now} run {self.run_id}: {self.summary}, {self.open} open"
                f" ({changes or 'no change'})")


Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def run_once(inputs: Inputs, paths: Paths, *, clock: Clock = wall_clock,
             warn: Callable[[str], None] = print, keep_going: bool = False) -> RunReport:
    """One evaluation and its transitions, appended and checkpointed.

    Bad input raises `SupervisorError` and writes nothing, unless `keep_going` (the loop): then
    an error event is appended once per distinct problem, and the state is kept.
    """
    log = EventLog(paths.events)
    with locked(paths.lock):
        checkpoint = load_checkpoint(paths.checkpoint, log, warn)
        now = parse_time(inputs.now) if inputs.now else clock()
        report = RunReport(run_id=uuid.uuid4().hex[:12], now=format_time(now))
        fingerprint = digest(inputs)
        if (fingerprint == checkpoint.inputs_digest and checkpoint.last_error is None
                and (checkpoint.valid_until is None or now < parse_time(checkpoint.valid_until))):
            report.skipped = True
            return _settle(report, checkpoint)
        try:
            loaded, evaluation = evaluate_inputs(inputs, clock=now)
        except SupervisorError as error:
            if not keep_going:
                raise
            _record_error(log, checkpoint, error.problems, report)
            save_checkpoint(paths.checkpoint, checkpoint)
            report.problems = error.problems
            return _settle(report, checkpoint)
        events = transitions(checkpoint.state, evaluation, report.run_id)
        if events:
            checkpoint.log_size = log.append(events)
        checkpoint.inputs_digest = fingerprint
        checkpoint.valid_until = (format_time(evaluation.valid_until)
                                  if evaluation.valid_until else None)
        checkpoint.last_error = None
        checkpoint.observed_at = format_time(loaded.state.world.observed_at)
        save_checkpoint(paths.checkpoint, checkpoint)
    for event in events:
        report.counts[event["type"]] = report.counts.get(event["type"], 0) + 1
    return _settle(report, checkpoint)


def _settle(report: RunReport, checkpoint: Checkpoint) -> RunReport:
    """The report's view of what is open, from the checkpoint the run left."""
    state = checkpoint.state
    report.summary, report.open = state.summary, len(state.open)
    report.observed_at = checkpoint.observed_at
    report.recommendations = [(entry["event"], entry.get("condition") or "",
                               entry.get("action") or "") for entry in state.open.values()]
    return report


def transitions(state: LogState, evaluation: Evaluation, run_id: str) -> list[dict[str, Any]]:
    """The event lines that take `state` to `evaluation`; `state` is updated to match them."""
    now = evaluation.now
    current = {r.fingerprint: r for r in evaluation.recommendations}
    events: list[dict[str, Any]] = []

    def emit(event: dict[str, Any]) -> None:
        events.append(event)
        state.apply(event)

    for recommendation in evaluation.recommendations:
        before = state.open.get(recommendation.fingerprint)
        after = (recommendation.event, recommendation.action, recommendation.severity)
        if before is None or (before["event"], before["action"], before["severity"]) != after:
            emit(_opened(recommendation, state, now, run_id))
    if not any(r.freezes_resolution for r in evaluation.recommendations):
        for fingerprint in sorted(set(state.open) - set(current)):
            emit(_resolved(state, fingerprint, now, run_id))
    if evaluation.summary != state.summary:
        emit({"ts": now, "source": SOURCE, "type": SUMMARY, "summary": evaluation.summary,
              "previous": state.summary, "run_id": run_id,
              "id": event_id("summary", state.summary_changes, evaluation.summary)})
    return events


def _opened(r: Recommendation, state: LogState, now: str, run_id: str) -> dict[str, Any]:
    sequence = state.transitions.get(r.fingerprint, 0)
    return {
        "ts": now, "source": SOURCE, "type": r.event, "subject": r.subject.to_json(),
        "condition": r.condition, "action": r.action, "severity": r.severity, "rule": r.rule,
        "reason": r.reason, "fingerprint": r.fingerprint, "run_id": run_id,
        "id": event_id(r.fingerprint, sequence, r.event, r.action, r.severity),
    }


def _resolved(state: LogState, fingerprint: str, now: str, run_id: str) -> dict[str, Any]:
    before = state.open[fingerprint]
    sequence = state.transitions.get(fingerprint, 0)
    return {
        "ts": now, "source": SOURCE, "type": RESOLVED, "subject": before["subject"],
        "condition": before.get("condition"), "action": before.get("action"),
        "severity": before.get("severity"), "rule": before.get("rule"),
        "reason": f"no longer holds (was: {before.get('reason')})",
        "fingerprint": fingerprint, "run_id": run_id,
        "id": event_id(fingerprint, sequence, RESOLVED),
    }


def _record_error(log: EventLog, checkpoint: Checkpoint, problems: list[Problem],
                  report: RunReport) -> None:
    text = "\n".join(str(problem) for problem in problems)
    if text == checkpoint.last_error:
        return  # already reported; say it again only when it changes
    checkpoint.last_error = text
    checkpoint.inputs_digest = None
    checkpoint.log_size = log.append([{
        "ts": report.now, "source": SOURCE, "type": ERROR,
        "reason": f"{len(problems)} input problem(s); recommendations kept from the last good run",
        "problems": [str(problem) for problem in problems], "run_id": report.run_id,
        "id": event_id("error", text),
    }])


class Stopper:
    """SIGTERM and SIGINT ask the loop to stop after the current run."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._stop)

    @property
    def stopping(self) -> bool:
        return self.event.is_set()

    def _stop(self, number: int, frame: FrameType | None) -> None:
        self.event.set()

    def sleep_until(self, deadline: float) -> None:
        while not self.stopping and (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(remaining, 0.2))


def loop(cycle: Callable[[], None], interval: float, stopper: Stopper) -> None:
    """Runs `cycle` every `interval` seconds on a fixed schedule (no drift); a run that
    overruns skips the slots it missed rather than running late ones back to back."""
    start = time.monotonic()
    slot = 0
    while not stopper.stopping:
        cycle()
        slot += 1
        elapsed = time.monotonic() - start
        if start + slot * interval < time.monotonic():
            slot = int(elapsed // interval) + 1
        stopper.sleep_until(start + slot * interval)


def watch(cycle: Callable[[], None], watched: list[Path], ignored: set[Path],
          heartbeat: float, stopper: Stopper) -> None:
    """Runs `cycle`, then again after each burst of changes under `watched` (an observer
    writing 500 files gives one run), and at least every `heartbeat` seconds, so that a world
    that stops changing is still noticed going stale."""
    from watchfiles import watch as changes_under

    ignored_names = {str(path) for path in ignored}

    def relevant(change: object, path: str) -> bool:
        return path not in ignored_names and not os.path.basename(path).startswith(".")

    cycle()
    # A burst ends after 1.5 s without a change (or after 30 s of changes, whichever first).
    for _ in changes_under(*watched, watch_filter=relevant, debounce=30_000, step=1500,
                           rust_timeout=int(heartbeat * 1000), yield_on_timeout=True,
                           stop_event=stopper.event, raise_interrupt=False):
        if stopper.stopping:
            break
        cycle()
