"""What the event log's lines mean: replaying them gives the open recommendations.

A reconcile line opens (or changes) its fingerprint's recommendation, `reconcile_resolved`
closes it, `supervisor_summary` sets the summary. Only lines of our source and our instance
count; another program's lines, another instance's, and lines that do not parse are skipped.
A line that claims to be ours but lacks what a line of ours always carries is skipped too, and
counted, so that one forged or damaged line cannot break the state.

The state holds the open recommendations only, never the history: replaying a year of log
costs memory for what is open, not for what the log holds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from supervisor.registry import EVENT_TYPES, SUMMARY_STATES

SOURCE = "runtime-supervisor"
RESOLVED = "reconcile_resolved"
SUMMARY = "supervisor_summary"
ERROR = "supervisor_error"

# What an open recommendation keeps: its current line's fields, and its episode.
FIELDS = ("subject", "condition", "action", "severity", "rule", "reason", "fingerprint")
_TEXT_FIELDS = ("condition", "action", "severity", "rule", "reason", "fingerprint", "id",
                "opened_at")


def event_id(*parts: object) -> str:
    """Deterministic: a line written twice (after a crash) carries the same id both times."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:16]


def opening_id(instance: str, fingerprint: str, opened_at: str, changes: int, event: str,
               action: str, severity: str) -> str:
    """Unique per episode (when it opened is part of it, so a recommendation opened again after
    the state was wiped gets a new id), and the same for the same transition written twice."""
    return event_id(instance, fingerprint, opened_at, changes, event, action, severity)


def resolution_id(instance: str, fingerprint: str, opened_at: str) -> str:
    return event_id(instance, fingerprint, opened_at, RESOLVED)


@dataclass
class LogState:
    """The open recommendations of one instance, by fingerprint, and its summary.

    Each open entry is its last line's fields plus `event` (its type), `id` (of the line that
    last opened or changed it), `opened_at` (when its episode opened) and `changes` (lines in
    the episode so far, which makes the next change's id).
    """

    instance: str
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    summary: str | None = None
    summary_id: str | None = None
    broken: int = 0  # lines claiming to be ours that were skipped
    first_broken: str | None = None  # why the first one was

    def apply(self, line: Any) -> None:
        """Applies one parsed log line; anything not ours is ignored."""
        if (not isinstance(line, dict) or line.get("source") != SOURCE
                or line.get("instance") != self.instance):
            return
        kind = line.get("type")
        if kind in EVENT_TYPES:
            problem = _opening_problem(line)
            if problem is None:
                fingerprint = line["fingerprint"]
                before = self.open.get(fingerprint)
                entry = {key: line[key] for key in FIELDS}
                entry.update(event=kind, id=line["id"], opened_at=line["opened_at"])
                if before is not None and before["opened_at"] == line["opened_at"]:
                    # a resync or a crash's rewrite repeats a line: it is not another change
                    repeated = before["id"] == line["id"]
                    entry["changes"] = before["changes"] + (0 if repeated else 1)
                else:
                    entry["changes"] = 1
                self.open[fingerprint] = entry
                return
        elif kind == RESOLVED:
            problem = _resolution_problem(line)
            if problem is None:
                self.open.pop(line["fingerprint"], None)
                return
        elif kind == SUMMARY:
            problem = _summary_problem(line)
            if problem is None:
                self.summary, self.summary_id = line["summary"], line["id"]
                return
        else:
            return  # errors, remediation lines: nothing to replay
        self.broken += 1
        if self.first_broken is None:
            self.first_broken = problem


def _opening_problem(line: dict[str, Any]) -> str | None:
    for key in _TEXT_FIELDS:
        if not isinstance(line.get(key), str):
            return f"a {line['type']} line without a text '{key}'"
    subject = line.get("subject")
    if not (isinstance(subject, dict) and isinstance(subject.get("kind"), str)
            and isinstance(subject.get("id"), str)):
        return f"a {line['type']} line without a subject kind and id"
    return None


def _resolution_problem(line: dict[str, Any]) -> str | None:
    for key in ("fingerprint", "id"):
        if not isinstance(line.get(key), str):
            return f"a {RESOLVED} line without a text '{key}'"
    return None


def _summary_problem(line: dict[str, Any]) -> str | None:
    if line.get("summary") not in SUMMARY_STATES or not isinstance(line.get("id"), str):
        return f"a {SUMMARY} line without a known summary and an id"
    return None
