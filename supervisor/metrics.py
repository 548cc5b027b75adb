"""Prometheus metrics for node_exporter's textfile collector (`--metrics-file`).

The text is prometheus_client's. The file is written to a temporary file beside it and renamed,
so the collector never reads half a file, and it is made readable by everyone (0644) whatever
the umask: node_exporter runs as another user, and the shipped units set `UMask=0077`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor.errors import Problem
from supervisor.registry import SUMMARY_STATES
from supervisor.safefile import UnsafeFileError
from supervisor.timestamps import parse_time

if TYPE_CHECKING:
    from supervisor.engine import Evaluation

MODE = 0o644


class Open(NamedTuple):
    """One open recommendation, as its `supervisor_recommendation` series names it."""

    subject: str
    kind: str
    node: str
    condition: str
    action: str
    event: str
    severity: str
    rule: str

    @classmethod
    def of(cls, subject: Mapping[str, Any], condition: str, action: str, event: str,
           severity: str, rule: str) -> Open:
        identifier, kind = str(subject.get("id") or ""), str(subject.get("kind") or "")
        node = identifier.split("/", 1)[0] if kind in ("service", "node") else ""
        return cls(identifier, kind, node, condition, action, event, severity, rule)

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]]) -> list[Open]:
        """From replayed log entries (a checkpoint's open recommendations)."""
        return [cls.of(entry.get("subject") or {}, *(str(entry.get(key) or "") for key in
                       ("condition", "action", "event", "severity", "rule")))
                for entry in entries]


@dataclass
class Snapshot:
    """What one run or evaluation leaves for Prometheus."""

    summary: str | None = None  # None when the inputs could not be evaluated
    recommendations: list[Open] = field(default_factory=list)
    world_age_seconds: float | None = None
    finished_at: float = 0.0  # Unix time
    duration_seconds: float = 0.0
    input_problems: int = 0

    @classmethod
    def of(cls, evaluation: Evaluation, observed_at: datetime, duration: float) -> Snapshot:
        return cls(
            summary=evaluation.summary,
            recommendations=[Open.of(r.subject.to_json(), r.condition, r.action, r.event,
                                     r.severity, r.rule) for r in evaluation.recommendations],
            world_age_seconds=(parse_time(evaluation.now) - observed_at).total_seconds(),
            finished_at=time.time(), duration_seconds=duration)


def write_metrics(path: Path, snapshot: Snapshot) -> None:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    if snapshot.summary is not None:
        state = Gauge("supervisor_summary_state", "The summary state: 1 for the current one.",
                      ["state"], registry=registry)
        for name in SUMMARY_STATES:
            state.labels(name).set(1 if name == snapshot.summary else 0)
        open_now = Gauge("supervisor_recommendations", "Open recommendations.",
                         ["event", "condition", "action"], registry=registry)
        for (event, condition, action), count in sorted(Counter(
                (r.event, r.condition, r.action) for r in snapshot.recommendations).items()):
            open_now.labels(event, condition, action).set(count)
        each = Gauge("supervisor_recommendation", "An open recommendation (always 1): which "
                     "subject needs what.", list(Open._fields), registry=registry)
        for recommendation in sorted(set(snapshot.recommendations)):
            each.labels(*recommendation).set(1)
    if snapshot.world_age_seconds is not None:
        Gauge("supervisor_world_age_seconds", "Age of the world snapshot at evaluation time.",
              registry=registry).set(snapshot.world_age_seconds)
    Gauge("supervisor_last_run_timestamp_seconds", "When the last run finished (Unix time).",
          registry=registry).set(snapshot.finished_at)
    Gauge("supervisor_last_run_duration_seconds", "How long the last run took.",
          registry=registry).set(snapshot.duration_seconds)
    Gauge("supervisor_input_problems", "Problems in the inputs of the last run (0: none).",
          registry=registry).set(snapshot.input_problems)
    _write(path, generate_latest(registry))


def _write(path: Path, text: bytes) -> None:
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise UnsafeFileError([Problem(str(path), message=f"cannot be written: {error.strerror}")]
                              ) from None
    try:
        os.fchmod(descriptor, MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(text)
        os.rename(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise UnsafeFileError([Problem(str(path), message=f"cannot be written: {error.strerror}")]
                              ) from None
