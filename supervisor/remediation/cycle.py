"""One pass of `supervisor remediate`: verify what was done, plan, and (with --execute) act.

The order is what makes it safe. Under a lock (one pass at a time), the pass replays the event
log; an attempt whose start is logged but whose end is not belonged to a process that died
mid-action, and is marked `remediation_interrupted` and verified like any other, never run
again blindly. Then it evaluates the inputs afresh: bad input, or a world that cannot be trusted
(a recommendation whose rule freezes resolution, such as `stale_world`), stops everything,
verification included. Only recommendations that both hold now and are open in the log are
candidates. Every action is logged before it starts and after it ends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jmespath.exceptions import JMESPathError

from supervisor.compiler import compile_ast, truthy
from supervisor.engine import Evaluation
from supervisor.errors import SupervisorError
from supervisor.eventlog import EventLog
from supervisor.functions import RuleFunctions
from supervisor.inputs import Inputs, evaluate_inputs
from supervisor.merge import State
from supervisor.remediation import history as h
from supervisor.remediation.executor import EXECUTORS, Context, Done, Executor
from supervisor.remediation.guardrails import in_window, window_end
from supervisor.remediation.holds import read_holds
from supervisor.remediation.planner import Decision, Planner
from supervisor.remediation.policy import PolicySet
from supervisor.replay import SOURCE, event_id
from supervisor.safefile import locked
from supervisor.timestamps import format_time, parse_time


@dataclass(frozen=True)
class Setup:
    inputs: Inputs
    events: Path
    holds: Path
    remediations: Path  # the history document evaluation reads
    policies: PolicySet
    instance: str  # run's: the open recommendations are its lines, and ours carry it too
    execute: bool = False
    endpoints: Mapping[str, str] = field(default_factory=dict)

    @property
    def lock(self) -> Path:
        return self.remediations.with_name(self.remediations.name + ".lock")


@dataclass
class PassReport:
    run_id: str
    now: str
    execute: bool
    untrusted: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)  # appended to the log
    decisions: list[Decision] = field(default_factory=list)
    verified: list[dict[str, Any]] = field(default_factory=list)
    acted: list[dict[str, Any]] = field(default_factory=list)  # how each action ended
    unlogged: str | None = None  # why nothing can be a candidate, when the log has none open

    def text(self) -> str:
        mode = "" if self.execute else " (dry run)"
        head = f"{self.now} remediate {self.run_id}{mode}"
        out = []
        if self.untrusted is not None:
            out.append(f"{head}: nothing done: {self.untrusted}")
        for line in self.verified:
            out.append(f"{head}: {line['type']} {line['subject']['id']} "
                       f"(attempt {line['attempt']}): {line['reason']}")
        for decision in self.decisions:
            subject = decision.recommendation.subject.id
            what = f"{decision.policy.executor} {_compact(decision.args)}"
            if decision.guardrail is not None:
                out.append(f"{head}: skipped {subject} ({decision.policy.id}): "
                           f"{decision.guardrail}: {decision.reason}")
            elif not self.execute:
                out.append(f"{head}: would act on {subject} ({decision.policy.id}): {what}")
        for line in self.acted:
            out.append(f"{head}: {line['type']} {line['subject']['id']} "
                       f"(attempt {line['attempt']}): {line['reason']}")
        if not out:
            out.append(f"{head}: nothing to do")
        if self.unlogged is not None:
            out.append(f"{head}: {self.unlogged}")
        return "\n".join(out) + "\n"


Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


def remediate_once(setup: Setup, *, clock: Clock = wall_clock,
                   executors: Mapping[str, Executor] = EXECUTORS) -> PassReport:
    log = EventLog(setup.events)
    with locked(setup.lock):
        history = h.replay(h.parsed(log, setup.instance), setup.instance)
        now = parse_time(setup.inputs.now) if setup.inputs.now else clock()
        report = PassReport(run_id=uuid.uuid4().hex[:12], now=format_time(now),
                            execute=setup.execute)

        def emit(line: dict[str, Any]) -> dict[str, Any]:
            line = {"ts": report.now, "source": SOURCE, "instance": setup.instance,
                    "run_id": report.run_id, **line}
            log.append([line])
            history.apply(line)
            report.lines.append(line)
            return line

        for attempt in history.in_flight():
            if attempt.stage == h.STARTED:  # we hold the lock: its process is gone
                emit(_attempt_line(h.INTERRUPTED, attempt, "the process that started it ended "
                                   "before logging how it went; it is verified, not repeated"))
        try:
            holds = read_holds(setup.holds)
            loaded, evaluation = evaluate_inputs(setup.inputs, clock=now)
        except SupervisorError as error:
            problem = "; ".join(str(p) for p in error.problems[:3])
            _untrusted(report, history, emit, f"bad input: {problem}", problem)
            h.write_document(setup.remediations, history, now)
            raise
        marks = _marks(setup.policies, loaded.state, now)
        distrust = _distrust(evaluation)
        if distrust is not None:
            _untrusted(report, history, emit, distrust,
                       format_time(loaded.state.world.observed_at))
            h.write_document(setup.remediations, history, now, marks)
            return report
        observed_at = loaded.state.world.observed_at
        for attempt in history.in_flight():
            verdict = _verify(attempt, history, evaluation, observed_at, now)
            if verdict is not None:
                report.verified.append(emit(_attempt_line(verdict[0], attempt, verdict[1])))
        if evaluation.recommendations and not history.episodes:
            report.unlogged = _unlogged(len(evaluation.recommendations), setup)
        planner = Planner(loaded.state, evaluation, history, holds, setup.policies, now)
        for decision in planner.plan():
            report.decisions.append(decision)
            if decision.go and setup.execute:
                _act(setup, decision, history, emit, executors, now, report)
            elif h.decision_key(_decision_line(decision, setup.execute)) != \
                    history.decisions.get(decision.recommendation.fingerprint):
                emit(_decision_line(decision, setup.execute))
        h.write_document(setup.remediations, history, now, marks)
    return report


def _unlogged(count: int, setup: Setup) -> str:
    """Recommendations hold but the log has none open: most often remediate reads another log,
    or names run's instance otherwise, and would silently never act."""
    held = "1 recommendation holds" if count == 1 else f"{count} recommendations hold"
    return (f"{held}, but none is open in {setup.events} for instance {setup.instance}: "
            "remediation acts only on what run has logged (give it run's --events, and run's "
            "--instance or --inventory and --checkpoint)")


def _marks(policies: PolicySet, state: State, now: datetime) -> h.Marks:
    """The subjects an open window that says `mark: true` covers, for evaluation to mark their
    recommendations as in maintenance. A window without `match` marks every node, which
    covers the services on it."""
    marks: h.Marks = {}
    functions = RuleFunctions(now)
    for window in policies.windows:
        if not window.mark or not in_window(window, now):
            continue
        mark = {"window": window.id, "until": format_time(window_end(window, now))}
        match = None if window.match is None else compile_ast(window.match, functions=functions)
        for subject in state.subjects["node"] + ([] if match is None
                                                  else state.subjects["service"]):
            try:
                covered = match is None or truthy(match(state.document(subject)))
            except (JMESPathError, ValueError, TypeError):
                covered = False
            if covered:
                marks.setdefault(subject.id, mark)
    return marks


def _distrust(evaluation: Evaluation) -> str | None:
    """Why the inputs cannot be acted on: a recommendation whose rule freezes resolution (the
    default rules' `stale_world`) says nothing derived from them can be trusted."""
    for recommendation in evaluation.recommendations:
        if recommendation.freezes_resolution:
            return f"{recommendation.condition}: {recommendation.reason}"
    return None


def _untrusted(report: PassReport, history: h.History, emit: Callable[..., Any], reason: str,
               key: str) -> None:
    """Logged once per world (or per problem), not on every pass while it lasts."""
    report.untrusted = reason
    line = {"type": h.SKIPPED, "guardrail": "untrusted_world", "reason": reason,
            "fingerprint": "world", "recommendation": key,
            "id": event_id("untrusted", key)}
    if history.decisions.get("world") != h.decision_key(line):
        emit(line)


def _verify(attempt: h.Attempt, history: h.History, evaluation: Evaluation,
            observed_at: datetime, now: datetime) -> tuple[str, str] | None:
    still = {r.fingerprint for r in evaluation.recommendations}
    still |= {r.fingerprint for r in evaluation.overruled}  # withdrawn is not resolved
    started = parse_time(attempt.started_at)
    if (attempt.fingerprint not in history.episodes and attempt.fingerprint not in still
            and observed_at > started):
        return h.SUCCEEDED, (f"resolved: the world observed at {format_time(observed_at)} no "
                             f"longer shows {attempt.condition}")
    if now >= parse_time(attempt.verify_by):
        return h.FAILED, f"{attempt.condition} still holds after verify_within"
    return None


def _act(setup: Setup, decision: Decision, history: h.History, emit: Callable[..., Any],
         executors: Mapping[str, Executor], now: datetime, report: PassReport) -> None:
    recommendation = decision.recommendation
    attempt = uuid.uuid4().hex[:16]
    verify_by = now + timedelta(seconds=setup.policies.verify_within(decision.policy))
    emit({**_decision_line(decision, True), "type": h.STARTED, "attempt": attempt,
          "verify_by": format_time(verify_by), "id": event_id(attempt, h.STARTED),
          "reason": f"{recommendation.condition} on {recommendation.subject.id}: "
                    f"{recommendation.reason}"})
    h.write_document(setup.remediations, history, now)  # evaluation sees it in flight
    context = Context(node=recommendation.subject.node, endpoints=dict(setup.endpoints))
    try:
        done = executors[decision.policy.executor].execute(decision.args, context)
    except Exception as error:  # noqa: BLE001 - an executor's bug must still end the attempt
        done = Done(False, f"the {decision.policy.executor} executor failed: {error!r}")
    kind = h.EXECUTED if done.ok else h.FAILED
    report.acted.append(emit({"type": kind, "attempt": attempt, "subject": recommendation.subject.to_json(),
          "fingerprint": recommendation.fingerprint, "policy": decision.policy.id,
          "reason": done.detail, "id": event_id(attempt, kind)}))


def _decision_line(decision: Decision, execute: bool) -> dict[str, Any]:
    recommendation = decision.recommendation
    kind = h.SKIPPED if decision.guardrail is not None else h.PLANNED
    line: dict[str, Any] = {
        "type": kind, "subject": recommendation.subject.to_json(),
        "fingerprint": recommendation.fingerprint, "recommendation": decision.episode,
        "condition": recommendation.condition, "action": recommendation.action,
        "rule": recommendation.rule, "policy": decision.policy.id,
        "executor": decision.policy.executor,
    }
    if decision.args is not None:
        line["args"] = decision.args
    if decision.guardrail is not None:
        line["guardrail"] = decision.guardrail
        line["reason"] = decision.reason
    elif not execute:
        line["reason"] = "dry run: --execute would act now"
    if decision.maintenance is not None:
        line["maintenance"] = decision.maintenance
    line["id"] = event_id(recommendation.fingerprint, decision.episode, kind,
                          decision.guardrail, decision.policy.id)
    return line


def _attempt_line(kind: str, attempt: h.Attempt, reason: str) -> dict[str, Any]:
    return {"type": kind, "attempt": attempt.id, "subject": attempt.subject,
            "fingerprint": attempt.fingerprint, "policy": attempt.policy, "reason": reason,
            "id": event_id(attempt.id, kind)}


def _compact(args: Any) -> str:
    import json

    return json.dumps(args, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
