"""What remediation has done, replayed from the event log (the only record): attempts with
their outcome, and the last decision logged per recommendation, so that a pass repeats neither
an action nor a line.

An attempt opens with `remediation_started` (written before the executor runs) and moves on
with each later line of the same `attempt`: `remediation_executed` or `remediation_interrupted`
(waiting for verification), then `remediation_succeeded` or `remediation_failed`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from supervisor.eventlog import EventLog
from supervisor.registry import EVENT_TYPES
from supervisor.replay import SOURCE
from supervisor.safefile import replace_atomically
from supervisor.timestamps import format_time, parse_time

PLANNED = "remediation_planned"
SKIPPED = "remediation_skipped"
STARTED = "remediation_started"
EXECUTED = "remediation_executed"
INTERRUPTED = "remediation_interrupted"
SUCCEEDED = "remediation_succeeded"
FAILED = "remediation_failed"

# The event types remediation writes: docs/events.md describes each (a test keeps them in step).
REMEDIATION_EVENTS: dict[str, str] = {
    PLANNED: "a dry run (no --execute): this action would be taken now",
    SKIPPED: "a guardrail held an action back; `guardrail` says which, `reason` why",
    STARTED: "an action is about to run (written before it does, with the attempt's id)",
    EXECUTED: "the executor did what it was asked; verification follows",
    INTERRUPTED: "an attempt's process ended before saying how the action went (a crash); "
                 "it is verified like any other, never repeated blindly",
    SUCCEEDED: "verified: the recommendation resolved within the policy's verify_within",
    FAILED: "the executor failed, or the recommendation did not resolve within verify_within",
}

# An attempt's status, as the merged document shows it to rules (like a deployment's).
RUNNING, SUCCEEDED_STATUS, FAILED_STATUS = "running", "succeeded", "failed"


@dataclass
class Attempt:
    id: str
    subject: dict[str, str]
    fingerprint: str
    policy: str
    executor: str
    action: str
    condition: str
    started_at: str
    verify_by: str
    recommendation: str | None = None  # the id of the reconcile line it acted on
    stage: str = STARTED  # the type of the attempt's last line
    finished_at: str | None = None
    detail: str = ""

    @property
    def in_flight(self) -> bool:
        return self.stage in (STARTED, EXECUTED, INTERRUPTED)

    @property
    def status(self) -> str:
        return {SUCCEEDED: SUCCEEDED_STATUS, FAILED: FAILED_STATUS}.get(self.stage, RUNNING)

    def to_document(self) -> dict[str, Any]:
        """The attempt as rules see it (docs/rules.md: `remediations`)."""
        record: dict[str, Any] = {
            "id": self.id, "status": self.status, "started_at": self.started_at,
            "policy": self.policy, "executor": self.executor, "action": self.action,
            "condition": self.condition, "fingerprint": self.fingerprint,
        }
        if self.finished_at is not None:
            record["finished_at"] = self.finished_at
        if self.detail:
            record["detail"] = self.detail
        return record


@dataclass
class History:
    instance: str | None  # the supervisor whose lines count (run's, and ours); None: any
    attempts: dict[str, Attempt] = field(default_factory=dict)  # by id, oldest first
    # Per recommendation fingerprint: the last planned/skipped line's (episode, type, guardrail,
    # policy), so that an unchanged decision is not logged again on every pass.
    decisions: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    # Open recommendations: fingerprint -> the id and event type of the line that opened them.
    episodes: dict[str, tuple[str | None, str]] = field(default_factory=dict)

    def apply(self, line: dict[str, Any]) -> None:
        if line.get("source") != SOURCE or (self.instance is not None
                                            and line.get("instance") != self.instance):
            return
        kind = line.get("type")
        fingerprint = line.get("fingerprint")
        if kind in EVENT_TYPES and isinstance(fingerprint, str):
            self.episodes[fingerprint] = (line.get("id"), kind)
        elif kind == "reconcile_resolved" and isinstance(fingerprint, str):
            self.episodes.pop(fingerprint, None)
        elif kind in (PLANNED, SKIPPED) and isinstance(fingerprint, str):
            self.decisions[fingerprint] = decision_key(line)
        elif kind == STARTED and isinstance(line.get("attempt"), str):
            try:
                self.attempts[line["attempt"]] = Attempt(
                    id=line["attempt"], subject=line["subject"], fingerprint=line["fingerprint"],
                    policy=line["policy"], executor=line["executor"], action=line["action"],
                    condition=line.get("condition", ""), started_at=line["ts"],
                    verify_by=line["verify_by"], recommendation=line.get("recommendation"))
            except KeyError:
                return  # a damaged line: skipped, like any line that lacks required keys
            if isinstance(fingerprint, str):
                self.decisions.pop(fingerprint, None)
        elif kind in (EXECUTED, INTERRUPTED, SUCCEEDED, FAILED):
            attempt = self.attempts.get(str(line.get("attempt")))
            if attempt is None or not attempt.in_flight:
                return
            attempt.stage = kind
            attempt.detail = str(line.get("reason", ""))
            if kind in (SUCCEEDED, FAILED):
                attempt.finished_at = line.get("ts")

    def in_flight(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts.values() if attempt.in_flight]

    def on(self, subject_id: str) -> list[Attempt]:
        return [a for a in self.attempts.values() if a.subject.get("id") == subject_id]


def decision_key(line: dict[str, Any]) -> tuple[Any, ...]:
    return (line.get("recommendation"), line.get("type"), line.get("guardrail"),
            line.get("policy"))


def replay(lines: Iterable[Any], instance: str | None) -> History:
    history = History(instance)
    for line in lines:
        if isinstance(line, dict):
            history.apply(line)
    return history


def parsed(log: EventLog, instance: str | None = None) -> Iterator[Any]:
    """The log's lines, parsed one at a time: memory holds one line, not the log. With
    `instance`, lines that cannot be that instance's are skipped unparsed (most of a shared
    log's are another's, and parsing is what a pass spends its time on)."""
    needle = None if instance is None else json.dumps(instance).encode()
    for line, _ in log.lines():
        if needle is not None and needle not in line:
            continue
        try:
            yield json.loads(line)
        except (ValueError, RecursionError):
            continue


KEEP = timedelta(days=7)
KEEP_PER_SUBJECT = 20


Marks = dict[str, dict[str, str]]  # subject id -> {"window", "until"}


def write_document(path: Path, history: History, now: datetime,
                   maintenance: Marks | None = None) -> None:
    """The attempts of the last week (at most 20 per subject) as an input of evaluation: the
    remediation history rules read (`--remediations`, docs/rules.md)."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for attempt in history.attempts.values():
        if now - parse_time(attempt.started_at) > KEEP and not attempt.in_flight:
            continue
        by_subject.setdefault(attempt.subject["id"], []).append(attempt.to_document())
    document: dict[str, Any] = {
        "version": 1,
        "written_at": format_time(now),
        "maintenance": dict(sorted((maintenance or {}).items())),
        "subjects": {subject: records[-KEEP_PER_SUBJECT:]
                     for subject, records in sorted(by_subject.items())},
    }
    data = json.dumps(document, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, data.encode())


def read_document(path: Path) -> tuple[dict[str, list[dict[str, Any]]], Marks]:
    """The attempts per subject id, and the subjects a marking maintenance window covered, for
    the merged document; none when there is no file.

    Refused when another user owns it: in a shared directory such as /tmp, a planted history
    could block every remediation (or hide failures)."""
    import os

    from supervisor import schemas
    from supervisor.errors import InputError
    from supervisor.loader import parse_json
    from supervisor.safefile import check_file, open_file
    from supervisor.schemas import JsonSource

    if not path.exists() and not path.is_symlink():
        return {}, {}
    descriptor = open_file(path, os.O_RDONLY)
    try:
        check_file(path, descriptor)
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    document = parse_json(b"".join(chunks).decode("utf-8", "replace"), str(path))
    problems = schemas.check("remediations", document, JsonSource(str(path)))
    if problems:
        raise InputError(problems)
    subjects: dict[str, list[dict[str, Any]]] = document["subjects"]
    marks: Marks = document.get("maintenance", {})
    return subjects, marks
