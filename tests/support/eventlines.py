"""Event-log lines as the supervisor writes them (the contract in docs/events.md), for tests of
the log's consumers that need exact control over what the log holds."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE = "runtime-supervisor"


def _id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


@dataclass
class Writer:
    """Appends runs to `path` for one `instance`; remembers what is open, as the supervisor."""

    path: Path
    instance: str = "lab"
    open: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> line
    runs: int = 0
    summary: str | None = None

    def run(self, ts: str, *, opened: Sequence[dict[str, Any]] = (),
            resolved: Sequence[str] = (), summary: str | None = None,
            resync: bool = False) -> str:
        """One run: `opened` are recommendations (subject id, condition, action, ... keys
        as in `recommendation()`), opened or changed; `resolved` are subject ids. `resync`
        writes every open one again first, as after a rotation. Returns the run id."""
        self.runs += 1
        run_id = f"run{self.runs:04d}"
        lines: list[dict[str, Any]] = []
        if resync:
            lines += [{**line, "ts": ts, "run_id": run_id, "resync": True}
                      for line in self.open.values()]
        for recommendation in opened:
            fingerprint = _id(recommendation["rule"], recommendation["subject"]["id"])
            before = self.open.get(fingerprint)
            opened_at = before["opened_at"] if before else ts
            line = {"ts": ts, "source": SOURCE, "instance": self.instance, "run_id": run_id,
                    "fingerprint": fingerprint, "opened_at": opened_at, **recommendation}
            line["id"] = _id(fingerprint, opened_at, line["type"], line["action"],
                             line["severity"])
            self.open[fingerprint] = line
            lines.append(line)
        for subject in resolved:
            fingerprint, before = next((f, line) for f, line in self.open.items()
                                       if line["subject"]["id"] == subject)
            del self.open[fingerprint]
            lines.append({**{k: before[k] for k in ("subject", "condition", "action",
                                                       "severity", "rule", "opened_at")},
                          "ts": ts, "source": SOURCE, "type": "reconcile_resolved",
                          "instance": self.instance, "run_id": run_id,
                          "fingerprint": fingerprint, "reason": "no longer holds",
                          "id": _id(fingerprint, before["opened_at"], "resolved")})
        if summary is not None and summary != self.summary:
            lines.append({"ts": ts, "source": SOURCE, "type": "supervisor_summary",
                          "instance": self.instance, "run_id": run_id, "summary": summary,
                          "previous": self.summary})
            self.summary = summary
        self.append(lines)
        return run_id

    def append(self, lines: list[dict[str, Any]]) -> None:
        with self.path.open("a") as log:
            log.write("".join(json.dumps(line) + "\n" for line in lines))


def recommendation(subject: str, *, kind: str = "service", condition: str = "unhealthy_service",
                   action: str = "redeploy", event: str = "reconcile_required",
                   severity: str = "warning", rule: str = "service-unhealthy",
                   reason: str | None = None) -> dict[str, Any]:
    return {"type": event, "subject": {"kind": kind, "id": subject}, "condition": condition,
            "action": action, "severity": severity, "rule": rule,
            "reason": reason if reason is not None else f"{subject} reports status failed"}
