"""`supervisor explain`: why each rule fired, did not match, or was overruled on one subject.

The explanation is read off the same `Evaluation` that `eval` prints (traced for this subject),
plus a clause breakdown of each matcher. It is never a second engine.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from supervisor.clauses import Clause, breakdown
from supervisor.engine import Evaluation, Outcome, Recommendation
from supervisor.errors import InputError, Problem
from supervisor.functions import RuleFunctions
from supervisor.merge import State
from supervisor.model import WORLD, Rule, RuleSet, Subject


@dataclass(frozen=True)
class RuleTrace:
    rule: Rule
    outcome: Outcome
    clauses: Clause | None  # None for a disabled rule

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "rule": self.rule.id, "outcome": self.outcome.outcome,
            "condition": self.rule.condition, "event": self.rule.event,
            "action": self.rule.action, "summary": self.rule.summary,
            "freezes_resolution": self.rule.freezes_resolution,
        }
        cause = self.outcome.overruled_by
        if cause is not None:
            document["overruled_by"] = {"rule": cause.rule, "subject": cause.subject.to_json()}
        if self.clauses is not None:
            document["clauses"] = [self.clauses.to_json()]
        return document


@dataclass(frozen=True)
class Related:
    """Another subject this one affects or depends on, with its state and recommendations."""

    subject: Subject
    state: str
    recommendations: tuple[Recommendation, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject.to_json(), "state": self.state,
                "recommendations": [r.to_json() for r in self.recommendations]}


@dataclass(frozen=True)
class Explanation:
    subject: Subject
    recommendations: tuple[Recommendation, ...]
    trace: tuple[RuleTrace, ...]
    context: dict[str, Any]
    comparison: tuple[tuple[str, Any, Any, bool], ...]  # field, desired, actual, differs
    dependencies: tuple[Related, ...] = ()
    dependents: tuple[Related, ...] = ()
    hosted: tuple[Related, ...] = ()
    overrules: tuple[Recommendation, ...] = field(default=())  # withdrawn by this subject

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject.to_json(),
            "recommendations": [r.to_json() for r in self.recommendations],
            "trace": [entry.to_json() for entry in self.trace],
            "context": self.context,
            "desired_vs_actual": [
                {"field": name, "desired": desired, "actual": actual, "differs": differs}
                for name, desired, actual, differs in self.comparison
            ],
            "dependencies": [related.to_json() for related in self.dependencies],
            "dependents": [related.to_json() for related in self.dependents],
            "services": [related.to_json() for related in self.hosted],
            "overrules": [r.to_json() for r in self.overrules],
        }


def resolve(state: State, text: str) -> Subject:
    """`node/service`, a node name, a bare service name, or `world`; a `service:`, `node:` or
    `world:` prefix says which kind is meant when names collide."""
    services = {subject.id for subject in state.subjects["service"]}
    nodes = {subject.id for subject in state.subjects["node"]}
    kind, _, name = text.partition(":") if ":" in text else ("", "", text)
    if kind == "world" and name in ("", "world"):
        return WORLD
    if kind in ("service", "node") and name in (services if kind == "service" else nodes):
        return Subject(kind, name)
    if kind:
        text = name  # an unknown kind or name: say so below, with suggestions
    elif text == "world":
        if "world" in nodes:
            raise InputError([Problem(message="'world' is ambiguous: the world snapshot "
                                      "('world:'), or the node ('node:world')")])
        return WORLD
    if "/" in text:
        if text in services:
            return Subject("service", text)
        candidates: list[str] = []
    else:
        named = sorted(s for s in services if s.split("/", 1)[1] == text)
        candidates = ([text] if text in nodes else []) + named
        if len(candidates) == 1:
            return Subject("node", text) if text in nodes else Subject("service", named[0])
    if len(candidates) > 1:
        listed = ", ".join(f"{c} (node)" if c in nodes else c for c in candidates)
        raise InputError([Problem(message=f"{text!r} is ambiguous: {listed}")])
    close = difflib.get_close_matches(text, sorted(services | nodes), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError([Problem(message=f"no subject {text!r} in the inventory or "
                              f"the world{hint}")])


def explain(state: State, rules: RuleSet, evaluation: Evaluation, subject: Subject) -> Explanation:
    """`evaluation` must have been traced for `subject`."""
    functions = RuleFunctions(state.now)
    document = state.document(subject)
    trace = []
    for outcome in evaluation.traces[subject]:
        rule = rules.rule(outcome.rule)
        clauses = None
        if rule.enabled:
            document["params"] = rule.params
            clauses = breakdown(rule.ast, document, functions)
        trace.append(RuleTrace(rule, outcome, clauses))
    context = state.document(subject)
    context["params"] = rules.params

    by_subject: dict[Subject, list[Recommendation]] = {}
    for recommendation in evaluation.recommendations:
        by_subject.setdefault(recommendation.subject, []).append(recommendation)
    mine = tuple(by_subject.get(subject, []))
    overrules = tuple(sorted(
        (target for target, cause in evaluation.overruled.items() if cause.subject == subject),
        key=lambda r: (r.subject.id, r.order)))

    def related(service_id: str) -> Related:
        related_subject = Subject("service", service_id)
        return Related(related_subject, _service_state(state, service_id),
                       tuple(by_subject.get(related_subject, [])))

    dependencies: tuple[Related, ...] = ()
    dependents: tuple[Related, ...] = ()
    hosted: tuple[Related, ...] = ()
    if subject.kind == "service":
        declared = state.inventory.services.get(subject.id)
        dependencies = tuple(related(d) for d in (declared.depends_on if declared else ()))
        dependents = tuple(
            related(s.id) for s in state.inventory.services.values() if subject.id in s.depends_on)
    elif subject.kind == "node":
        hosted = tuple(related(service_id) for service_id in state.hosted.get(subject.id, []))
    return Explanation(subject, mine, tuple(trace), context, _compare(context, subject),
                       dependencies, dependents, hosted, overrules)


def _service_state(state: State, service_id: str) -> str:
    actual = state.world.services.get(service_id)
    declared = service_id in state.inventory.services
    status = actual["status"] if actual else "missing"
    node = state.world.nodes.get(service_id.split("/", 1)[0])
    node_status = node["status"] if node else "absent"
    return f"{status}{'' if declared else ', undeclared'} (node {node_status})"


def _compare(document: dict[str, Any], subject: Subject) -> tuple[tuple[str, Any, Any, bool], ...]:
    """Desired against actual, field by field, the differences marked."""
    if subject.kind == "world":
        return ()
    side = document["service"] if subject.kind == "service" else document["node"]
    desired, actual = side["desired"], side["actual"]
    healthy = "ok" if subject.kind == "service" else "online"
    rows: list[tuple[str, Any, Any, bool]] = [
        ("present", desired is not None, actual is not None, (desired is None) != (actual is None)),
    ]
    if actual is not None:
        status = actual.get("status")
        rows.append(("status", healthy if desired is not None else None, status,
                     desired is not None and status != healthy))
    names = [name for name in (desired or {}) if name not in ("depends_on",)]
    names += [name for name in (actual or {}) if name not in names and name != "status"]
    for name in names:
        want = (desired or {}).get(name)
        have = (actual or {}).get(name)
        in_both = desired is not None and actual is not None and name in desired and name in actual
        rows.append((name, want, have, in_both and want is not None and want != have))
    return tuple(rows)
