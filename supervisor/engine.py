"""The interpreter: evaluates rules over subjects and returns recommendations. No I/O here."""

from __future__ import annotations

import bisect
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Container, Iterator
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any, NamedTuple

from jmespath.exceptions import JMESPathError

from supervisor.batch import DEFER, Table, compile_batch
from supervisor.compiler import Budget, Fn, OverBudget, compile_ast, truthy
from supervisor.errors import Problem, RuleError
from supervisor.functions import RuleFunctions
from supervisor.limits import Limits
from supervisor.merge import State
from supervisor.model import Rule, RuleSet, Subject, Template
from supervisor.registry import SUMMARY_STATES
from supervisor.terminal import cap

FIRED, NO_MATCH, OVERRULED, DISABLED = "fired", "did not match", "overruled", "disabled"


class Recommendation(NamedTuple):
    subject: Subject
    condition: str
    event: str
    action: str
    severity: str
    rule: str
    reason: str
    order: int  # the rule's position: recommendations sort by it
    # Declared by the rule (the summary raised to unstable on a critical subject): what this
    # recommendation does to the summary, and whether `run` may resolve anything while it holds.
    summary: str = "degraded"
    freezes_resolution: bool = False
    # A maintenance window that says `mark: true` covers the subject (docs/remediation.md).
    maintenance: str | None = None

    @property
    def fingerprint(self) -> str:
        """Named from the rule and the subject alone, so worked out only when asked for: a
        table for people shows none, and SHA-256 (OpenSSL) costs a small `eval` a twentieth of
        its start."""
        return fingerprint(self.rule, self.subject)

    def to_json(self) -> dict[str, Any]:
        found = {
            "subject": self.subject.to_json(),
            "condition": self.condition,
            "event": self.event,
            "action": self.action,
            "severity": self.severity,
            "rule": self.rule,
            "reason": self.reason,
            "fingerprint": self.fingerprint,
        }
        if self.maintenance is not None:
            found["maintenance"] = self.maintenance
        return found


class Outcome(NamedTuple):
    """What one rule did on one subject, for `explain`."""

    rule: str
    outcome: str  # FIRED, NO_MATCH, OVERRULED or DISABLED
    value: Any = None  # what the matcher returned
    overruled_by: Recommendation | None = None


class Evaluation(NamedTuple):
    now: str
    summary: str
    recommendations: tuple[Recommendation, ...]
    traces: dict[Subject, tuple[Outcome, ...]]
    # Each withdrawn recommendation and the root cause that withdrew it (for explain).
    overruled: dict[Recommendation, Recommendation]
    # The same inputs evaluated before this moment give the same recommendations (None: ever).
    valid_until: datetime | None = None
    # The subjects whose evaluation saw a moment that `valid_until` is reached from (None among
    # them: a moment seen outside any subject's turn).
    pinned: frozenset[Subject | None] = frozenset()
    # Per rule, the steps of work it spent over all subjects (at most, for one taken up): an
    # evaluation of some subjects only must know whether all of them stay within the budget.
    spent: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "evaluated_at": self.now,
            "recommendations": [r.to_json() for r in self.recommendations],
        }


@lru_cache(maxsize=1 << 17)  # `run` asks each recommendation for it several times
def fingerprint(rule: str, subject: Subject) -> str:
    """Stable across runs, inputs and clocks: it names the (rule, subject) pair only."""
    import hashlib

    key = f"{rule}\x1f{subject.kind}\x1f{subject.id}".encode()
    return hashlib.sha256(key).hexdigest()[:16]


def evaluate(
    state: State, rules: RuleSet, *, trace: Container[Subject] = (), reference: bool = False,
    limits: Limits | None = None,
) -> Evaluation:
    """Every rule, in order, over every subject of its kind; then root causes overrule symptoms.

    Outcomes are kept only for the subjects in `trace` (explain asks for one subject).
    `reference` evaluates matchers with jmespath's own interpreter instead of the compiled
    closures: slower, unbudgeted, and the yardstick the tests hold the fast path to. Each rule
    has a budget of work (`limits.rule_steps` per subject, `limits.rule_steps_total` over all
    of them); a rule that spends it fails with an error naming it, and its other subjects are
    not evaluated.
    """
    limits = limits or Limits()
    # Closures are built per evaluation, since functions bind its "now"; that costs well under
    # a millisecond per rule, against the interpreter's per-node dispatch on every subject.
    functions = RuleFunctions(state.now)
    build = _interpreted(functions) if reference else partial(compile_ast, functions=functions)
    budgets = {rule.id: Budget(limits.rule_steps, limits.rule_steps_total)
               for rule in rules.rules if rule.enabled}
    matchers = {rule.id: build(rule.ast, budget=budgets[rule.id])
                for rule in rules.rules if rule.enabled}
    reasons = {
        rule.id: [build(ast, budget=budgets[rule.id]) for ast in rule.reason.expressions]
        for rule in rules.rules if rule.enabled and rule.reason is not None
    }
    # Each rule over all subjects of its kind at once where that is exact (batch.py); the
    # subjects it leaves undecided, and those that match, are evaluated one by one.
    batches = {} if reference else {rule.id: compile_batch(rule.ast, functions)
                                    for rule in rules.rules if rule.enabled}
    tables: dict[str, Table] = {}
    # One document per subject, built on first use and shared by every rule of its kind.
    documents_by_kind: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    tracing = bool(trace)
    fired: list[tuple[Rule, Recommendation]] = []
    results: dict[tuple[str, Subject], Any] = {}
    # Per rule: the key that failed (match or reason) and on which subjects, with the error.
    failures: dict[str, list[tuple[str, str]]] = defaultdict(list)

    for order, rule in enumerate(rules.rules):
        if not rule.enabled:
            continue
        matcher, params, budget = matchers[rule.id], rule.params, budgets[rule.id]
        subjects = state.subjects[rule.kind]
        documents = documents_by_kind[rule.kind]
        batch = batches.get(rule.id)
        charges: dict[int, int] = {}
        if batch is None:
            values = [DEFER] * len(subjects)
        else:
            table = tables.get(rule.kind)
            if table is None:
                table = tables[rule.kind] = Table(subjects, state.fields(rule.kind))
            table.params, table.steps, table.charges = params, limits.rule_steps, charges
            values = batch(table)
        if tracing:
            results.update(((rule.id, subject), value)
                           for subject, value in zip(subjects, values, strict=True)
                           if subject in trace and value is not DEFER)
        # Subjects the batch settled as not matching need nothing more, unless they spent some
        # of the budget: that is charged to each in subject order, as the closure spends it.
        candidates = [index for index, value in enumerate(values)
                      if value is not False and value is not None
                      and (value is DEFER or truthy(value))]
        if charges:
            candidates = sorted({*candidates, *(index for index in charges
                                                if values[index] is not DEFER)})
        for index in candidates:
            subject, value = subjects[index], values[index]
            key = "match"
            budget.renew()
            functions.subject = subject  # the moments its time functions see are its own
            try:
                if value is DEFER:
                    value = matcher(_document(state, documents, subjects, index, params))
                    if tracing and subject in trace:
                        results[(rule.id, subject)] = value
                elif index in charges:
                    budget.spend(charges[index])
                if not truthy(value):
                    continue
                key = "reason"
                reason = _render(rule, reasons.get(rule.id, []), subject,
                                 _document(state, documents, subjects, index, params))
            except (JMESPathError, ValueError, TypeError) as error:
                failures[rule.id].append((key, f"{subject.kind} {subject.id}: {error}"))
                continue
            except OverBudget as spent:
                failures[rule.id].insert(0, (key, _over_budget(spent, subject)))
                break  # the rest would cost as much: one message, and on to the next rule
            fired.append((rule, Recommendation(
                subject=subject, condition=rule.condition, event=rule.event, action=rule.action,
                severity=rule.severity, rule=rule.id, reason=reason, order=order,
                summary="unstable" if state.is_critical(subject) else rule.summary,
                freezes_resolution=rule.freezes_resolution,
                maintenance=state.maintenance(subject),
            )))
    if failures:
        raise RuleError([_failure(rules, rule_id, found) for rule_id, found in failures.items()])

    overruled = _overrule(state, fired)
    recommendations = tuple(sorted(
        (r for _, r in fired if r not in overruled),
        key=lambda r: (r.subject.id, r.order, r.subject.kind),
    ))
    traces = {
        subject: _trace(rules, subject, results, fired, overruled)
        for subjects in state.subjects.values()
        for subject in subjects
        if subject in trace
    } if tracing else {}
    thresholds = _thresholds(rules) if functions.moments else set()
    until = valid_until(state.now, functions.moments, thresholds)
    return Evaluation(
        now=state.now_text,
        summary=summarize(recommendations),
        recommendations=recommendations,
        traces=traces,
        overruled=overruled,
        valid_until=until,
        pinned=pinned(until, functions.moments, thresholds),
        spent={rule_id: limits.rule_steps_total - budget.total + budget.granted - budget.left
               for rule_id, budget in budgets.items()},
    )


def _document(state: State, documents: dict[int, dict[str, Any]], subjects: list[Subject],
              index: int, params: dict[str, Any]) -> dict[str, Any]:
    """The document of the subject at `index`, built once per evaluation, with the rule's
    params."""
    document = documents.get(index)
    if document is None:
        document = documents[index] = state.document(subjects[index])
    document["params"] = params
    return document


def _over_budget(spent: OverBudget, subject: Subject) -> str:
    scope = "left of its budget over all subjects" if spent.total else "per subject"
    variable = "SUPERVISOR_MAX_RULE_STEPS" + ("_TOTAL" if spent.total else "")
    return (f"{subject.kind} {subject.id}: stopped: the rule's work exceeds its budget of "
            f"{spent.steps} steps {scope} (projections nested over large lists?); "
            f"raise {variable} if that is right")


def _interpreted(functions: RuleFunctions) -> Callable[..., Fn]:
    from supervisor.reference import interpreter as reference_interpreter

    interpreter = reference_interpreter(functions)

    def build(ast: Any, budget: Budget | None = None) -> Fn:
        return lambda document: interpreter.visit(ast, document)

    return build


def _render(rule: Rule, placeholders: list[Fn], subject: Subject,
            document: dict[str, Any]) -> str:
    template: Template | None = rule.reason
    if template is None:
        return f"{subject.id}: {rule.condition.replace('_', ' ')}"
    text = template.literals[0]
    for placeholder, literal in zip(placeholders, template.literals[1:], strict=True):
        text += _as_text(placeholder(document)) + literal
    # One field of the world (a service's whole log, say) must not make a line of megabytes
    # in the table, the event log and the checkpoint.
    return cap(text)


def _as_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(_as_text(item) for item in value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _overrule(
    state: State, fired: list[tuple[Rule, Recommendation]]
) -> dict[Recommendation, Recommendation]:
    """Each withdrawn recommendation, and the first (in rule order) root cause that withdrew it."""
    by_subject: dict[Subject, list[Recommendation]] = defaultdict(list)
    by_node: dict[str, list[Recommendation]] = defaultdict(list)
    for _, recommendation in fired:
        by_subject[recommendation.subject].append(recommendation)
        if recommendation.subject.kind == "service":
            by_node[recommendation.subject.node].append(recommendation)
    everything = [recommendation for _, recommendation in fired]

    overruled: dict[Recommendation, Recommendation] = {}
    for rule, cause in fired:
        if rule.overrules is None:
            continue
        scope = rule.overrules.scope
        if scope == "self":
            targets = by_subject[cause.subject]
        elif scope == "hosted_services":
            targets = by_node[cause.subject.id]
        else:
            targets = everything
        for target in targets:
            if target is cause or target in overruled:
                continue
            if rule.overrules.covers(target.action, target.condition):
                overruled[target] = cause
    return overruled


def _trace(
    rules: RuleSet, subject: Subject, results: dict[tuple[str, Subject], Any],
    fired: list[tuple[Rule, Recommendation]], overruled: dict[Recommendation, Recommendation],
) -> tuple[Outcome, ...]:
    mine = {r.rule: r for _, r in fired if r.subject == subject}
    outcomes = []
    for rule in rules.rules:
        if rule.kind != subject.kind:
            continue
        if not rule.enabled:
            outcomes.append(Outcome(rule.id, DISABLED))
            continue
        value = results.get((rule.id, subject))
        recommendation = mine.get(rule.id)
        if recommendation is None:
            outcomes.append(Outcome(rule.id, NO_MATCH, value))
        elif recommendation in overruled:
            outcomes.append(Outcome(rule.id, OVERRULED, value, overruled[recommendation]))
        else:
            outcomes.append(Outcome(rule.id, FIRED, value))
    return tuple(outcomes)


def _failure(rules: RuleSet, rule_id: str, found: list[tuple[str, str]]) -> Problem:
    """One problem per failing rule, at the key that failed in its file."""
    key, first = found[0]
    more = f" (and {len(found) - 1} more subjects)" if len(found) > 1 else ""
    return rules.rule(rule_id).problem(key, f"failed on {first}{more}")


# The clock's grain: the times compared are datetimes, to the microsecond.
GRAIN = timedelta(microseconds=1)


def valid_until(now: datetime, moments: Collection[datetime], thresholds: set[float]
                ) -> datetime | None:
    """The first moment after `now` from which a time-dependent result could differ: the
    evaluation holds at every moment before it.

    Time enters rules only through time functions, compared with thresholds. A comparison of
    `now - moment` with a threshold can only flip when now reaches `moment + threshold`; the
    thresholds (`_thresholds`) are the numbers in the rules' params and matchers (and 0). This
    is conservative (a few needless re-evaluations) as long as thresholds are written as such
    numbers, not computed: docs/rules.md says so.
    """
    if not moments:
        return None
    ordered = sorted(moments)
    earliest: datetime | None = None
    for seconds in thresholds:
        try:
            # The earliest moment m with m + seconds >= now. `age > seconds` that does not
            # hold at now = m + seconds holds a microsecond later: then the evaluation holds
            # at now only (a run at the same `--now` may still reuse it).
            index = bisect.bisect_left(ordered, now - timedelta(seconds=seconds))
            if index < len(ordered):
                candidate = max(ordered[index] + timedelta(seconds=seconds), now + GRAIN)
                earliest = candidate if earliest is None else min(earliest, candidate)
        except OverflowError:
            return now  # at the ends of the calendar: never reuse, always evaluate again
    return earliest


def pinned(until: datetime | None, moments: dict[datetime, set[Any]], thresholds: set[float]
           ) -> frozenset[Subject | None]:
    """The subjects that saw a moment from which `valid_until` reached `until`: only their
    evaluation holds the evaluation to that moment, so one that evaluates them again and not
    the others must find it again or not trust it (incremental.py)."""
    if until is None:
        return frozenset()
    found: set[Subject | None] = set()
    for seconds in thresholds:
        try:
            # Reached from m + seconds, or a grain after it when that was the very moment.
            for reached in (until, until - GRAIN):
                found.update(moments.get(reached - timedelta(seconds=seconds), ()))
        except OverflowError:
            found.add(None)
    return frozenset(found)


def _thresholds(rules: RuleSet) -> set[float]:
    found: set[float] = {0.0}
    for rule in rules.rules:
        if not rule.enabled:
            continue
        found.update(_numbers(rule.params))
        found.update(_numbers(rule.ast))
    # ahead_seconds(m) > t flips when now reaches m - t: the negated thresholds cover it.
    found.update([-value for value in found])
    return {value for value in found if abs(value) < 1e10}


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield float(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


_RANK = {state: rank for rank, state in enumerate(SUMMARY_STATES)}


def summarize(recommendations: tuple[Recommendation, ...]) -> str:
    """The worst state any recommendation brings; `nominal` with none. Each recommendation's
    state comes from its rule (and the inventory's criticality), never from its name here."""
    return max((r.summary for r in recommendations), key=_RANK.__getitem__, default="nominal")


def reached(summary: str, threshold: str) -> bool:
    """Whether `summary` is at least as bad as `threshold`."""
    return _RANK[summary] >= _RANK[threshold]
