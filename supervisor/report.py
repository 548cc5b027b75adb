"""Reporters: the same `Evaluation`, rendered for machines (JSON) or people (a table)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from supervisor.engine import Evaluation, Recommendation

if TYPE_CHECKING:
    from supervisor.clauses import Clause
    from supervisor.explain import Explanation

_RESET = "\033[0m"
_COLOURS = {
    "reconcile_blocked": "\033[31m",  # red
    "reconcile_required": "\033[33m",  # yellow
    "reconcile_recommended": "\033[36m",  # cyan
    "unstable": "\033[1;31m",
    "degraded": "\033[1;33m",
    "reconciling": "\033[1;36m",
    "nominal": "\033[1;32m",
    "subject": "\033[1m",
    "dim": "\033[2m",
}
_EVENT_LABELS = {
    "reconcile_blocked": "blocked",
    "reconcile_required": "required",
    "reconcile_recommended": "recommended",
}


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and stream.isatty()


def to_json(document: Any) -> str:
    """Deterministic JSON: the same document always gives the same bytes."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class _Painter:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or style not in _COLOURS:
            return text
        return f"{_COLOURS[style]}{text}{_RESET}"


def render_table(evaluation: Evaluation, *, colour: bool = False) -> str:
    paint = _Painter(colour)
    count = len(evaluation.recommendations)
    noun = "recommendation" if count == 1 else "recommendations"
    lines = [
        (f"{paint(evaluation.summary.upper(), evaluation.summary)}  "
        f"{count} {noun}, evaluated at {evaluation.now}")
    ]
    rows = list(evaluation.recommendations)
    if not rows:
        lines.append("Inventory and world agree: nothing to reconcile.")
        return "\n".join(lines) + "\n"
    width_event = max(len(_EVENT_LABELS[r.event]) for r in rows)
    width_action = max(len(r.action) for r in rows)
    for subject, group in _grouped(rows):
        lines.append("")
        lines.append(paint(f"{subject[1]}", "subject") + paint(f"  {subject[0]}", "dim"))
        for r in group:
            label = _EVENT_LABELS[r.event].ljust(width_event)
            lines.append(
                f"  {paint(label, r.event)}  {r.action.ljust(width_action)}  {r.reason}"
                + paint(f"  [{r.rule}]", "dim")
            )
    return "\n".join(lines) + "\n"


def _grouped(
    rows: Iterable[Recommendation],
) -> list[tuple[tuple[str, str], list[Recommendation]]]:
    groups: dict[tuple[str, str], list[Recommendation]] = {}
    for row in rows:
        groups.setdefault((row.subject.kind, row.subject.id), []).append(row)
    return list(groups.items())


_OUTCOME_STYLES = {"fired": "reconcile_blocked", "overruled": "reconcile_required",
                   "did not match": "dim", "disabled": "dim"}
_OPERATOR_LABELS = {"and": "all of", "or": "any of", "not": "not"}


def render_explanation(explanation: Explanation, *, colour: bool = False) -> str:
    from supervisor.clauses import show

    paint = _Painter(colour)
    subject = explanation.subject
    lines = [paint(subject.id, "subject") + paint(f"  {subject.kind}", "dim")]
    if not explanation.recommendations:
        lines.append("  no recommendations")
    for r in explanation.recommendations:
        lines.append(f"  {paint(_EVENT_LABELS[r.event], r.event)}  {r.action}  {r.reason}")
        lines.append(paint(f"    rule {r.rule} ({r.condition}), {r.severity}, "
                           f"fingerprint {r.fingerprint}", "dim"))
        lines.append(paint(f"    {_meaning(r)}", "dim"))

    if explanation.comparison:
        lines += ["", "Desired vs actual"]
        rows = [("field", "desired", "actual", "")] + [
            (name, show(desired, 36), show(actual, 36), "differs" if differs else "")
            for name, desired, actual, differs in explanation.comparison]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            text = "  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
            lines.append((text + "  " + paint(row[3], "reconcile_required")).rstrip())
    for title, entries in (("Depends on", explanation.dependencies),
                           ("Waited on by", explanation.dependents),
                           ("Services on this node", explanation.hosted)):
        if entries:
            lines += ["", title]
            width = max(len(entry.subject.id) for entry in entries)
            for entry in entries:
                actions = ", ".join(f"{r.action} ({r.condition})" for r in entry.recommendations)
                lines.append(f"  {entry.subject.id.ljust(width)}  {entry.state}"
                             + (f"  -> {actions}" if actions else ""))
    if explanation.overrules:
        lines += ["", "Overrules (root cause over symptom)"]
        for r in explanation.overrules:
            lines.append(f"  {r.subject.id}: {r.action} ({r.condition}, rule {r.rule})")

    lines += ["", "Rules, in evaluation order"]
    for index, step in enumerate(explanation.trace):
        last = index == len(explanation.trace) - 1
        outcome = step.outcome
        label = paint(outcome.outcome.ljust(13), _OUTCOME_STYLES.get(outcome.outcome, "dim"))
        head = f"{label}  {step.rule.id}"
        if outcome.overruled_by is not None:
            cause = outcome.overruled_by
            head += f"  by {cause.rule} on {cause.subject.id}"
        elif outcome.outcome == "fired":
            head += f"  -> {step.rule.event} {step.rule.action}"
        lines.append(("└─ " if last else "├─ ") + head)
        if step.clauses is not None:
            _clause_lines(step.clauses, "   " if last else "│  ", True, lines)
    return "\n".join(lines) + "\n"


def _meaning(r: Recommendation) -> str:
    """What the recommendation does beyond itself, as its rule declares it."""
    text = f"makes the summary at least {r.summary}"
    if r.freezes_resolution:
        text += "; while it holds, run resolves nothing"
    return text


_WIDTH = 100  # columns the explain tree aims to fit


def _fit(expression: str, prefix: str, rest: str) -> str:
    """The expression, cut to fit the line: it names the clause here; the rule file and
    --format json have it whole."""
    room = max(24, _WIDTH - len(prefix) - len(rest))
    return expression if len(expression) <= room else expression[: room - 1] + "…"


def _clause_lines(clause: Clause, indent: str, last: bool, lines: list[str]) -> None:
    from supervisor.clauses import show

    branch = "└─ " if last else "├─ "
    prefix = f"{indent}{branch}"
    if not clause.evaluated:
        lines.append(f"{prefix}{_fit(clause.text, prefix, '  (not evaluated)')}  (not evaluated)")
        return
    if clause.kind in _OPERATOR_LABELS:
        lines.append(f"{prefix}{_OPERATOR_LABELS[clause.kind]} -> {show(clause.value)}")
    elif clause.kind == "call":
        lines.append(f"{prefix}{clause.detail} = {show(clause.value)}")
    else:
        rest = (f" -> {clause.detail}" if clause.kind == "compare" else "") + \
            f" -> {show(clause.value)}"
        lines.append(f"{prefix}{_fit(clause.text, prefix, rest)}{rest}")
    child_indent = indent + ("   " if last else "│  ")
    for index, child in enumerate(clause.clauses):
        _clause_lines(child, child_indent, index == len(clause.clauses) - 1, lines)
