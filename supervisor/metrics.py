"""Prometheus metrics for node_exporter's textfile collector (`--metrics-file`).

The file is written by prometheus_client's own textfile writer, which writes a temporary file
and renames it, so the collector never reads half a file.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from supervisor.engine import Evaluation
from supervisor.errors import Problem
from supervisor.registry import SUMMARY_STATES
from supervisor.safefile import UnsafeFileError
from supervisor.timestamps import parse_time


@dataclass
class Snapshot:
    """What one run or evaluation leaves for Prometheus."""

    summary: str | None = None  # None when the inputs could not be evaluated
    recommendations: list[tuple[str, str, str]] = field(default_factory=list)  # event, cond., act.
    world_age_seconds: float | None = None
    finished_at: float = 0.0  # Unix time
    duration_seconds: float = 0.0
    input_problems: int = 0

    @classmethod
    def of(cls, evaluation: Evaluation, observed_at: datetime, duration: float) -> Snapshot:
        return cls(
            summary=evaluation.summary,
            recommendations=[(r.event, r.condition, r.action) for r in evaluation.recommendations],
            world_age_seconds=(parse_time(evaluation.now) - observed_at).total_seconds(),
            finished_at=time.time(), duration_seconds=duration)


def write_metrics(path: Path, snapshot: Snapshot) -> None:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    if snapshot.summary is not None:
        state = Gauge("supervisor_summary_state", "The summary state: 1 for the current one.",
                      ["state"], registry=registry)
        for name in SUMMARY_STATES:
            state.labels(name).set(1 if name == snapshot.summary else 0)
        open_now = Gauge("supervisor_recommendations", "Open recommendations.",
                         ["event", "condition", "action"], registry=registry)
        for (event, condition, action), count in sorted(
                Counter(snapshot.recommendations).items()):
            open_now.labels(event, condition, action).set(count)
    if snapshot.world_age_seconds is not None:
        Gauge("supervisor_world_age_seconds", "Age of the world snapshot at evaluation time.",
              registry=registry).set(snapshot.world_age_seconds)
    Gauge("supervisor_last_run_timestamp_seconds", "When the last run finished (Unix time).",
          registry=registry).set(snapshot.finished_at)
    Gauge("supervisor_last_run_duration_seconds", "How long the last run took.",
          registry=registry).set(snapshot.duration_seconds)
    Gauge("supervisor_input_problems", "Problems in the inputs of the last run (0: none).",
          registry=registry).set(snapshot.input_problems)
    try:
        write_to_textfile(str(path), registry)
    except OSError as error:
        raise UnsafeFileError([Problem(str(path), message=f"cannot be written: {error.strerror}")]
                              ) from None

