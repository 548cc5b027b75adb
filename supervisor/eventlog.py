"""The append-only event log: one JSON object per line, the source of truth for `run`.

Appends take an exclusive `flock` and go out in one write, then fsync. A writer killed mid-write
can leave a partial last line; the next writer (holding the lock) cuts it off before appending,
so the log only ever holds whole lines. Replaying the log's reconcile events gives the open
recommendations: a reconcile event opens (or updates) its fingerprint, `reconcile_resolved`
closes it. Lines from other sources are kept and ignored.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.registry import EVENT_TYPES
from supervisor.safefile import open_file

SOURCE = "runtime-supervisor"
RESOLVED = "reconcile_resolved"
SUMMARY = "supervisor_summary"
ERROR = "supervisor_error"
_CHUNK = 1 << 16


def event_id(*parts: object) -> str:
    """Deterministic: a line written twice (after a crash) carries the same id both times."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()[:16]


@dataclass
class LogState:
    """What replaying the log gives: open recommendations by fingerprint, and counters."""

    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    transitions: dict[str, int] = field(default_factory=dict)  # per fingerprint, for event ids
    summary: str | None = None
    summary_changes: int = 0

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("source") != SOURCE:
            return
        kind = event.get("type")
        fingerprint = event.get("fingerprint")
        if kind in EVENT_TYPES and isinstance(fingerprint, str):
            self.open[fingerprint] = {key: event.get(key) for key in _RECOMMENDATION_KEYS}
            self.open[fingerprint]["event"] = kind
            self.transitions[fingerprint] = self.transitions.get(fingerprint, 0) + 1
        elif kind == RESOLVED and isinstance(fingerprint, str):
            self.open.pop(fingerprint, None)
            self.transitions[fingerprint] = self.transitions.get(fingerprint, 0) + 1
        elif kind == SUMMARY and isinstance(event.get("summary"), str):
            self.summary = event["summary"]
            self.summary_changes += 1


_RECOMMENDATION_KEYS = ("subject", "condition", "action", "severity", "rule", "reason",
                        "fingerprint")


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        try:
            return self.path.lstat().st_size
        except FileNotFoundError:
            return 0

    def append(self, events: list[dict[str, Any]]) -> int:
        """Appends whole lines, durably; returns the log's size afterwards."""
        data = b"".join(
            json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            for event in events
        )
        descriptor = open_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            _cut_partial_line(descriptor)
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
            return os.fstat(descriptor).st_size
        finally:
            os.close(descriptor)

    def read(self, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """The whole lines from `offset` on, parsed, and the offset just after the last one.

        Lines that are not JSON objects (another writer's, or damaged) are skipped.
        """
        if not self.path.exists() and not self.path.is_symlink():
            return [], 0
        descriptor = open_file(self.path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            os.lseek(descriptor, offset, os.SEEK_SET)
            chunks = []
            while chunk := os.read(descriptor, _CHUNK):
                chunks.append(chunk)
        finally:
            os.close(descriptor)
        data = b"".join(chunks)
        complete = data[: data.rfind(b"\n") + 1]
        events = []
        for line in complete.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                events.append(event)
        return events, offset + len(complete)


def _cut_partial_line(descriptor: int) -> None:
    """Truncates a last line that a killed writer left without its newline."""
    size = os.fstat(descriptor).st_size
    if size == 0 or os.pread(descriptor, 1, size - 1) == b"\n":
        return
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        block = os.pread(descriptor, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            os.ftruncate(descriptor, start + newline + 1)
            return
        end = start
    os.ftruncate(descriptor, 0)
