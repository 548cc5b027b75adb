"""Reporters: the same `Evaluation`, rendered for machines (JSON) or people (a table)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from supervisor.engine import Evaluation, Recommendation
from supervisor.terminal import printable

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


TABLE_WIDTH = 100  # columns the table fits: a reason wraps under itself, never the terminal
_GLUE = "\u00a0\u00a0"  # two no-break spaces: textwrap does not break a line there


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
    width_action = max(len(printable(r.action)) for r in rows)
    for subject, group in _grouped(rows):
        lines.append("")
        lines.append(paint(printable(subject[1]), "subject") + paint(f"  {subject[0]}", "dim"))
        for r in group:
            label = _EVENT_LABELS[r.event].ljust(width_event)
            action = printable(r.action).ljust(width_action)
            indent = " " * len(f"  {label}  {action}  ")
            # The rule stays on the line of the reason's last word (glued by no-break spaces).
            reason, tag = printable(r.reason), f"[{r.rule}]"
            wrapped = _wrap(f"{reason}{_GLUE}{tag}", len(indent))
            if wrapped[-1].endswith(_GLUE + tag):
                wrapped[-1] = wrapped[-1][: -len(_GLUE + tag)] + paint(f"  {tag}", "dim")
            else:  # a word longer than a line was cut, and the glue with it
                wrapped = [*_wrap(reason, len(indent)), paint(tag, "dim")]
            lines.append(f"  {paint(label, r.event)}  {action}  {wrapped[0]}")
            lines.extend(indent + text for text in wrapped[1:])
    return "\n".join(lines) + "\n"


def _wrap(text: str, indent: int) -> list[str]:
    """`text` in lines that end by TABLE_WIDTH when they start at column `indent`; words stay
    whole unless one alone is longer than a line."""
    room = TABLE_WIDTH - indent
    if len(text) <= room:
        return [text]
    return textwrap.wrap(text, max(room, 20), break_on_hyphens=False) or [text]


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
    lines = [paint(printable(subject.id), "subject") + paint(f"  {subject.kind}", "dim")]
    overruled = [step for step in explanation.trace if step.outcome.overruled_by is not None]
    if not explanation.recommendations:
        lines.append("  no recommendations" + (": overruled by a root cause" if overruled else ""))
    for step in overruled:  # said first: it is why this subject has nothing (or less) to do
        cause = step.outcome.overruled_by
        assert cause is not None
        lines.append(f"  {paint('overruled', 'reconcile_required')}  {step.rule.action} "
                     f"({step.rule.id}), by {cause.rule} on {printable(cause.subject.id)}")
        lines.append(paint(f"    which recommends {cause.action}: {printable(cause.reason)}",
                           "dim"))
    for r in explanation.recommendations:
        lines.append(f"  {paint(_EVENT_LABELS[r.event], r.event)}  {r.action}  "
                     f"{printable(r.reason)}")
        lines.append(paint(f"    rule {r.rule} ({r.condition}), {r.severity}, "
                           f"fingerprint {r.fingerprint}", "dim"))
        lines.append(paint(f"    {_meaning(r)}", "dim"))

    if explanation.comparison:
        lines += ["", "Desired vs actual"]
        rows = [("field", "desired", "actual", "")] + [
            (printable(name), show(desired, 36), show(actual, 36), "differs" if differs else "")
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
            width = max(len(printable(entry.subject.id)) for entry in entries)
            for entry in entries:
                actions = ", ".join(f"{r.action} ({r.condition})" for r in entry.recommendations)
                lines.append(f"  {printable(entry.subject.id).ljust(width)}  "
                             f"{printable(entry.state)}" + (f"  -> {actions}" if actions else ""))
    if explanation.overrules:
        lines += ["", "Overrules (root cause over symptom)"]
        for r in explanation.overrules:
            lines.append(f"  {printable(r.subject.id)}: {r.action} ({r.condition}, rule {r.rule})")

    lines += ["", "Rules, in evaluation order"]
    for index, step in enumerate(explanation.trace):
        last = index == len(explanation.trace) - 1
        outcome = step.outcome
        label = paint(outcome.outcome.ljust(13), _OUTCOME_STYLES.get(outcome.outcome, "dim"))
        head = f"{label}  {step.rule.id}"
        if outcome.overruled_by is not None:
            cause = outcome.overruled_by
            head += f"  by {cause.rule} on {printable(cause.subject.id)}"
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
    expression = printable(expression)
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
