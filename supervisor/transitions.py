"""`supervisor run`: evaluate, compare with the checkpoint, append only what changed.

A run is a transition, as Alertmanager's notification log does it: a new recommendation opens
(its reconcile event type), a changed one (event, action or severity) opens again with the new
values, one that no longer holds is `reconcile_resolved`. An unchanged run appends nothing.
While the world is stale nothing is resolved: nothing derived from it can be trusted.

Runs sharing a checkpoint serialise on a lock file beside it; the log has its own lock for the
append, since other programs may write to it too.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from supervisor.checkpoint import Checkpoint, Glance, Kept, glance, remember, save_checkpoint
from supervisor.errors import Problem, SupervisorError
from supervisor.eventlog import EventLog
from supervisor.manifest import Fresh, Source
from supervisor.metrics import Open, Snapshot
from supervisor.replay import (
    ERROR,
    FIELDS,
    RESOLVED,
    SOURCE,
    SUMMARY,
    LogState,
    event_id,
    opening_id,
    resolution_id,
)
from supervisor.safefile import UnsafeFileError, locked
from supervisor.terminal import counted
from supervisor.timestamps import format_time, parse_time

if TYPE_CHECKING:
    from supervisor.engine import Evaluation, Recommendation
    from supervisor.inputs import Inputs

RESYNC = "resync"  # the count of lines a run wrote again


@dataclass(frozen=True)
class Paths:
    events: Path
    checkpoint: Path

    @property
    def lock(self) -> Path:
        return self.checkpoint.with_name(self.checkpoint.name + ".lock")


INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")


def default_instance(inventory: Path, checkpoint: Path) -> str:
    """A name for the supervisor that keeps this inventory with this checkpoint: two of them
    sharing a log (two sites, two people with the default paths) get different ones."""
    inventory_path, checkpoint_path = os.path.abspath(inventory), os.path.abspath(checkpoint)
    tag = hashlib.sha256(f"{inventory_path}\0{checkpoint_path}".encode()).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", Path(inventory_path).parent.name)[:40].strip("-.")
    return f"{stem or 'homelab'}-{tag}"


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
    # The open recommendations, as the checkpoint has them; read only for the metrics.
    open_entries: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self, duration: float) -> Snapshot:
        age = None
        if self.observed_at is not None:
            age = (parse_time(self.now) - parse_time(self.observed_at)).total_seconds()
        return Snapshot(summary=self.summary,
                        recommendations=Open.from_entries(self.open_entries),
                        world_age_seconds=age, finished_at=time.time(),
                        duration_seconds=duration, input_problems=len(self.problems))

    def line(self) -> str:
        if self.problems:
            return f"{self.now} run {self.run_id}: input problems, state kept"
        if self.skipped and self.counts:
            return (f"{self.now} run {self.run_id}: inputs unchanged; "
                    f"{counted(self.counts.get(RESYNC, 0), 'line')} written again (resync)")
        if self.skipped:
            return f"{self.now} run {self.run_id}: inputs unchanged, nothing to do"
        # What is open and what was written are two numbers: the open set is the state, the
        # lines are this run's changes to it (summary lines included).
        written = sum(self.counts.values())
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.counts.items()))
        return (f"{self.now} run {self.run_id}: {self.summary}, {self.open} open; "
                + (f"wrote {counted(written, 'line')} ({kinds})" if written else "wrote nothing"))


Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def run_once(inputs: Inputs, paths: Paths, *, instance: str | None = None,
             clock: Clock = wall_clock, warn: Callable[[str], None] = print,
             keep_going: bool = False, lock_timeout: float = 30.0,
             cancelled: Callable[[], bool] = lambda: False,
             source: Source | None = None, kept: Kept | None = None,
             at_a_glance: bool = False) -> RunReport:
    """One evaluation and its transitions, appended and checkpointed.

    A long-running process passes the same `source` (its inputs, see manifest.py) and `kept`
    (its checkpoint) to every run, so that a run with nothing new reads neither again. A run of
    its own may instead find `at_a_glance` that nothing is new (see `checkpoint.glance`); its
    report then lists no open recommendations (`open_entries`, which the metrics need).

    Bad input raises `SupervisorError` and writes nothing, unless `keep_going` (the loop): then
    an error event is appended once per distinct problem, and the state is kept. A log that
    lost what the checkpoint saw gets the open recommendations again first (a resync).
    """
    instance = instance or default_instance(inputs.inventory, paths.checkpoint)
    try:
        return _run(inputs, paths, instance, clock, warn, keep_going, lock_timeout, cancelled,
                    source, kept or Kept(), at_a_glance)
    except OSError as error:
        # The state files' own errors are all worded where they happen; this is the net under
        # them, so that no operational error ends in a traceback.
        raise UnsafeFileError([Problem(str(error.filename or paths.events),
                                       message=error.strerror or str(error))]) from None


def _run(inputs: Inputs, paths: Paths, instance: str, clock: Clock,
         warn: Callable[[str], None], keep_going: bool, lock_timeout: float,
         cancelled: Callable[[], bool], source: Source | None, kept: Kept,
         at_a_glance: bool) -> RunReport:
    log = EventLog(paths.events, lock_timeout=lock_timeout, cancelled=cancelled)
    inventory = os.path.abspath(inputs.inventory)
    with locked(paths.lock, lock_timeout, cancelled):
        now = parse_time(inputs.now) if inputs.now else clock()
        report = RunReport(run_id=uuid.uuid4().hex[:12], now=format_time(now))
        source = source or Fresh()
        seen = glance(paths.checkpoint, log, instance, inventory) if at_a_glance else None
        fingerprint = source.fingerprint(inputs)
        if seen is not None and _nothing_new(seen, fingerprint, now):
            report.skipped = True
            report.summary, report.open, report.observed_at = (seen.summary, seen.open,
                                                               seen.observed_at)
            return report
        checkpoint = kept.load(paths.checkpoint, log, instance, inventory, warn)

        def keep() -> None:
            kept.keep(paths.checkpoint, log, checkpoint)
            if at_a_glance:
                remember(paths.checkpoint, log, checkpoint, seen)

        events = resync(checkpoint.state, report.now, report.run_id) if checkpoint.resync else []
        if _nothing_new(checkpoint, fingerprint, now):
            report.skipped = True
            if events or not checkpoint.saved:
                _commit(log, paths, checkpoint, events, report)
            keep()
            return _settle(report, checkpoint)
        try:
            loaded, evaluation = source.evaluate(inputs, now)
        except SupervisorError as error:
            if not keep_going:
                raise
            events += _error_lines(checkpoint, error.problems, report)
            _commit(log, paths, checkpoint, events, report)
            keep()
            report.problems = error.problems
            return _settle(report, checkpoint)
        events += transitions(checkpoint.state, evaluation, report.run_id)
        checkpoint.inputs_digest = fingerprint
        checkpoint.valid_until = (format_time(evaluation.valid_until)
                                  if evaluation.valid_until else None)
        checkpoint.last_error = None
        checkpoint.observed_at = format_time(loaded.state.world.observed_at)
        _commit(log, paths, checkpoint, events, report)
        keep()
    return _settle(report, checkpoint)


def _nothing_new(last: Checkpoint | Glance, fingerprint: str, now: datetime) -> bool:
    """The last run evaluated these very inputs, without error, and its evaluation holds now.
    A clock set back before the world's observed_at (where clock skew lies) is no time the
    last evaluation vouches for."""
    return (fingerprint == last.inputs_digest and last.last_error is None
            and (last.valid_until is None or now < parse_time(last.valid_until))
            and (last.observed_at is None or now >= parse_time(last.observed_at)))


def _commit(log: EventLog, paths: Paths, checkpoint: Checkpoint, events: list[dict[str, Any]],
            report: RunReport) -> None:
    """The log first, then the checkpoint: a run killed between the two is caught up from the
    log's tail by the next one."""
    if events:
        checkpoint.mark = log.append(events)
    save_checkpoint(paths.checkpoint, checkpoint)
    for event in events:
        kind = RESYNC if event.get("resync") else event["type"]
        report.counts[kind] = report.counts.get(kind, 0) + 1


def _settle(report: RunReport, checkpoint: Checkpoint) -> RunReport:
    """The report's view of what is open, from the checkpoint the run left."""
    state = checkpoint.state
    report.summary, report.open = state.summary, len(state.open)
    report.observed_at = checkpoint.observed_at
    report.open_entries = list(state.open.values())
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
        emit({"ts": now, "source": SOURCE, "type": SUMMARY, "instance": state.instance,
              "summary": evaluation.summary, "previous": state.summary, "run_id": run_id,
              "id": event_id(state.instance, SUMMARY, now, state.summary, evaluation.summary)})
    return events


def resync(state: LogState, now: str, run_id: str) -> list[dict[str, Any]]:
    """Every open recommendation (and the summary) again, each with the id of the line that
    last opened or changed it, so that a consumer that has seen that line can drop this one."""
    events = [{
        "ts": now, "source": SOURCE, "type": entry["event"], "instance": state.instance,
        **{key: entry[key] for key in FIELDS}, "run_id": run_id, "id": entry["id"],
        "opened_at": entry["opened_at"], "resync": True,
    } for _, entry in sorted(state.open.items())]
    if state.summary is not None:
        events.append({"ts": now, "source": SOURCE, "type": SUMMARY, "instance": state.instance,
                       "summary": state.summary, "run_id": run_id, "id": state.summary_id,
                       "resync": True})
    return events


def _opened(r: Recommendation, state: LogState, now: str, run_id: str) -> dict[str, Any]:
    before = state.open.get(r.fingerprint)
    opened_at, changes = (before["opened_at"], before["changes"]) if before else (now, 0)
    line = {
        "ts": now, "source": SOURCE, "type": r.event, "instance": state.instance,
        "subject": r.subject.to_json(), "condition": r.condition, "action": r.action,
        "severity": r.severity, "rule": r.rule, "reason": r.reason,
        "fingerprint": r.fingerprint, "run_id": run_id,
        "id": opening_id(state.instance, r.fingerprint, opened_at, changes, r.event, r.action,
                         r.severity),
        "opened_at": opened_at,
    }
    if r.maintenance is not None:  # a window that marks covers it (docs/remediation.md)
        line["maintenance"] = r.maintenance
    return line


def _resolved(state: LogState, fingerprint: str, now: str, run_id: str) -> dict[str, Any]:
    before = state.open[fingerprint]
    return {
        "ts": now, "source": SOURCE, "type": RESOLVED, "instance": state.instance,
        "subject": before["subject"], "condition": before["condition"],
        "action": before["action"], "severity": before["severity"], "rule": before["rule"],
        "reason": f"no longer holds (was: {before['reason']})",
        "fingerprint": fingerprint, "run_id": run_id,
        "id": resolution_id(state.instance, fingerprint, before["opened_at"]),
        "opened_at": before["opened_at"],
    }


def _error_lines(checkpoint: Checkpoint, problems: list[Problem],
                 report: RunReport) -> list[dict[str, Any]]:
    text = "\n".join(str(problem) for problem in problems)
    if text == checkpoint.last_error:
        return []  # already reported; say it again only when it changes
    checkpoint.last_error = text
    checkpoint.inputs_digest = None
    instance = checkpoint.state.instance
    return [{
        "ts": report.now, "source": SOURCE, "type": ERROR, "instance": instance,
        "reason": f"{len(problems)} input problem(s); recommendations kept from the last good run",
        "problems": [str(problem) for problem in problems], "run_id": report.run_id,
        "id": event_id(instance, ERROR, report.now, text),
    }]


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
