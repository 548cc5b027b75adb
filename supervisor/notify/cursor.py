"""The notifier's durable cursor: where it is in the event log, what it believes open, and the
transitions it has read but no receiver has accepted yet (the outbox).

Reading the log and delivering are two steps with a save between them. Lines read become
batches in the outbox (one per run that changed something), saved with the new log position
before anything is sent; a batch leaves the outbox only when every receiver accepted it. A
notifier killed at any instant therefore loses nothing; at worst a receiver that accepted a
batch just before the kill gets it again (Alertmanager deduplicates; a chat message repeats).

Lines are judged by the event-log contract: other sources, other instances, and lines missing
a required key are skipped. A line whose `id` is the one we already hold for its fingerprint
(a resync after rotation, or a line written again after a crash) is not a transition.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.errors import Problem, SupervisorError
from supervisor.notify.feed import Position, Read
from supervisor.registry import EVENT_TYPES
from supervisor.replay import RESOLVED, SOURCE, SUMMARY
from supervisor.safefile import open_file, replace_atomically

VERSION = 1
OPENED, CHANGED, CLOSED = "opened", "changed", "resolved"  # transition kinds

_RECONCILE_KEYS = ("ts", "instance", "run_id", "subject", "condition", "action", "severity",
                   "rule", "fingerprint", "id", "opened_at")
_RESOLVED_KEYS = ("ts", "instance", "run_id", "fingerprint", "id")


class StateError(SupervisorError):
    """The notifier's state file is unusable, or another notifier holds it."""


@dataclass
class Transition:
    kind: str  # opened, changed, resolved
    line: dict[str, Any]  # the log line; for `resolved`, the resolution (or the run's time)
    before: dict[str, Any] | None = None  # the line it replaces (changed, resolved)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "line": self.line, "before": self.before}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Transition:
        return cls(value["kind"], value["line"], value.get("before"))


@dataclass
class Batch:
    """What one run changed, for one instance: one message, one post."""

    instance: str
    run_id: str
    ts: str
    transitions: list[Transition] = field(default_factory=list)
    summary: str | None = None  # the instance's summary state after this run
    pending: list[str] = field(default_factory=list)  # receivers that have not accepted it

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "run_id": self.run_id, "ts": self.ts,
                "summary": self.summary, "pending": self.pending,
                "transitions": [t.to_json() for t in self.transitions]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Batch:
        return cls(value["instance"], value["run_id"], value["ts"],
                   [Transition.from_json(t) for t in value["transitions"]],
                   value.get("summary"), list(value["pending"]))


def key_of(line: dict[str, Any]) -> str:
    return f"{line['instance']}\x1f{line['fingerprint']}"


@dataclass
class Cursor:
    notifier: str
    position: Position = field(default_factory=Position)
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> line that opened it
    summaries: dict[str, str] = field(default_factory=dict)  # instance -> summary state
    awaiting: dict[str, list[str]] = field(default_factory=dict)  # after a rotation, see below
    outbox: list[Batch] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"version": VERSION, "notifier": self.notifier,
                "position": self.position.to_json(), "open": self.open,
                "summaries": self.summaries, "awaiting": self.awaiting,
                "outbox": [batch.to_json() for batch in self.outbox]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Cursor:
        return cls(value["notifier"], Position.from_json(value["position"]), value["open"],
                   value["summaries"], value["awaiting"],
                   [Batch.from_json(batch) for batch in value["outbox"]])

    def take(self, reads: list[Read], receivers: list[str], instance: str | None = None) -> int:
        """Turns lines read into outbox batches for `receivers`; returns the lines skipped."""
        skipped = 0
        for read in reads:
            skipped += read.skipped
            if read.rotated:
                # The new file starts with a resync of everything open. What we hold open and
                # the instance's first run there does not mention was resolved in the lines we
                # missed: resolve it then.
                for key, line in self.open.items():
                    keys = self.awaiting.setdefault(line["instance"], [])
                    if key not in keys:
                        keys.append(key)
            batches: dict[tuple[str, str], Batch] = {}
            for line in read.lines:
                if line.get("source") != SOURCE:
                    continue
                if not _whole(line):
                    skipped += 1
                    continue
                if instance is not None and line["instance"] != instance:
                    continue
                self._follow(line, batches)
            for batch in batches.values():
                self._close_awaiting(batch)
            for batch in batches.values():
                if batch.transitions:
                    batch.pending = list(receivers)
                    self.outbox.append(batch)
        return skipped

    def _follow(self, line: dict[str, Any], batches: dict[tuple[str, str], Batch]) -> None:
        name, kind = line["instance"], line["type"]
        batch = batches.get((name, line["run_id"]))
        if batch is None:
            batch = batches[name, line["run_id"]] = Batch(name, line["run_id"], line["ts"])
        if kind == SUMMARY:
            self.summaries[name] = line["summary"]
        elif kind in EVENT_TYPES or kind == RESOLVED:
            key = key_of(line)
            if key in self.awaiting.get(name, ()):
                self.awaiting[name].remove(key)
            before = self.open.get(key)
            if kind == RESOLVED:
                if before is not None:
                    batch.transitions.append(Transition(CLOSED, line, before))
                    del self.open[key]
            elif before is None or before["id"] != line["id"]:
                batch.transitions.append(Transition(OPENED if before is None else CHANGED,
                                                    line, before))
                self.open[key] = line
        batch.summary = self.summaries.get(name)

    def _close_awaiting(self, batch: Batch) -> None:
        """The instance wrote into the new file: what it did not resync is no longer open."""
        for key in self.awaiting.pop(batch.instance, []):
            before = self.open.pop(key, None)
            if before is not None:
                resolution = {**before, "type": RESOLVED, "ts": batch.ts,
                              "run_id": batch.run_id}
                batch.transitions.append(Transition(CLOSED, resolution, before))

    def accepted(self, receiver: str, count: int) -> None:
        """`receiver` accepted the first `count` batches it had pending."""
        for batch in [b for b in self.outbox if receiver in b.pending][:count]:
            batch.pending.remove(receiver)
        self.outbox = [batch for batch in self.outbox if batch.pending]

    def retarget(self, receivers: list[str]) -> None:
        """Receivers no longer configured get nothing more; new ones get what comes next."""
        for batch in self.outbox:
            batch.pending = [name for name in batch.pending if name in receivers]
        self.outbox = [batch for batch in self.outbox if batch.pending]

    def pending(self, receiver: str) -> list[Batch]:
        return [batch for batch in self.outbox if receiver in batch.pending]


def _whole(line: dict[str, Any]) -> bool:
    kind = line.get("type")
    if kind in EVENT_TYPES:
        subject = line.get("subject")
        return (all(isinstance(line.get(k), str) for k in _RECONCILE_KEYS if k != "subject")
                and isinstance(subject, dict) and isinstance(subject.get("id"), str)
                and isinstance(subject.get("kind"), str))
    if kind == RESOLVED:
        return all(isinstance(line.get(k), str) for k in _RESOLVED_KEYS)
    if kind == SUMMARY:
        return all(isinstance(line.get(k), str) for k in ("ts", "instance", "run_id", "summary"))
    return isinstance(line.get("instance"), str) and isinstance(line.get("run_id"), str) and \
        isinstance(line.get("ts"), str)


@contextlib.contextmanager
def held(path: Path) -> Iterator[None]:
    """One notifier per state file: a second one would deliver everything twice."""
    lock = path.with_name(path.name + ".lock")
    descriptor = open_file(lock, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise StateError([Problem(str(path), message="another notifier is using this state "
                                      "file; give each its own --state")]) from None
        yield
    finally:
        os.close(descriptor)


def load(path: Path, notifier: str) -> Cursor:
    try:
        descriptor = open_file(path, os.O_RDONLY)
    except SupervisorError:
        if not path.exists() and not path.is_symlink():
            return Cursor(notifier)
        raise
    try:
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            text = handle.read()
    finally:
        os.close(descriptor)
    try:
        cursor = Cursor.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise StateError([Problem(str(path), message=f"is not a notifier state file ({error}); "
                                  "move it aside to start over from the start of the log")]
                         ) from None
    if cursor.notifier != notifier:
        raise StateError([Problem(str(path), message=f"belongs to the {cursor.notifier} "
                                  f"notifier, not to {notifier}; give each its own --state")])
    return cursor


def save(path: Path, cursor: Cursor) -> None:
    replace_atomically(path, json.dumps(cursor.to_json(), sort_keys=True,
                                        separators=(",", ":")).encode())
