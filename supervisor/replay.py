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

# The fields of a reconcile line that an open recommendation keeps (with its episode's).
FIELDS = ("subject", "condition", "action", "severity", "rule", "reason", "fingerprint")


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
        """Applies one parsed log line; anything not ours is ignored.

        Written for speed: rebuilding a checkpoint applies every line of a year of log.
        """
        if (type(line) is not dict or line.get("instance") != self.instance
                or line.get("source") != SOURCE):
            return
        kind = line.get("type")
        if kind in EVENT_TYPES:
            entry = _opening(line, kind)
            if isinstance(entry, dict):
                fingerprint = entry["fingerprint"]
                before = self.open.get(fingerprint)
                if before is not None and before["opened_at"] == entry["opened_at"]:
                    # a resync or a crash's rewrite repeats a line: it is not another change
                    entry["changes"] = before["changes"] + (before["id"] != entry["id"])
                else:
                    entry["changes"] = 1
                self.open[fingerprint] = entry
                return
            problem = entry
        elif kind == RESOLVED:
            fingerprint, identifier = line.get("fingerprint"), line.get("id")
            if type(fingerprint) is str and type(identifier) is str:
                self.open.pop(fingerprint, None)
                return
            problem = f"a {RESOLVED} line without a text 'fingerprint' and 'id'"
        elif kind == SUMMARY:
            summary, identifier = line.get("summary"), line.get("id")
            if summary in SUMMARY_STATES and type(identifier) is str:
                self.summary, self.summary_id = summary, identifier
                return
            problem = f"a {SUMMARY} line without a known summary and an id"
        else:
            return  # errors, remediation lines: nothing to replay
        self.broken += 1
        if self.first_broken is None:
            self.first_broken = problem


def _opening(line: dict[str, Any], kind: str) -> dict[str, Any] | str:
    """The open entry a reconcile line makes, or what is wrong with the line."""
    try:
        entry = {"subject": line["subject"], "condition": line["condition"],
                 "action": line["action"], "severity": line["severity"], "rule": line["rule"],
                 "reason": line["reason"], "fingerprint": line["fingerprint"], "event": kind,
                 "id": line["id"], "opened_at": line["opened_at"]}
    except KeyError as missing:
        return f"a {kind} line without {missing}"
    if not (str is type(entry["condition"]) is type(entry["action"]) is type(entry["severity"])
            is type(entry["rule"]) is type(entry["reason"]) is type(entry["fingerprint"])
            is type(entry["id"]) is type(entry["opened_at"])):
        return f"a {kind} line with a field that is not text"
    subject = entry["subject"]
    if not (type(subject) is dict and type(subject.get("kind")) is str
            and type(subject.get("id")) is str):
        return f"a {kind} line without a subject kind and id"
    return entry
