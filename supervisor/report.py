"""Reporters: the same `Evaluation`, rendered for machines (JSON) or people (a table)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any, TextIO

from supervisor.engine import Evaluation, Recommendation

_RESET = "\033[0m"
_COLOURS = {
    "reconcile_blocked": "\033[31m",  # red
    "reconcile_required": "\033[33m",  # yellow
    "reconcile_recommended": "\033[36m",  # cyan
    "unstable": "\033[1;31m",
    "degraded": "\033[1;33m",
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
