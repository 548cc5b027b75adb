"""The checkpoint: the event log's replayed state, so that a run need not replay the whole log.

The log is the source of truth. A checkpoint that lags the log (a run killed between appending
and checkpointing) is brought up to date from the log's tail; a missing one is rebuilt from the
whole log; an unreadable one is moved aside, loudly, and rebuilt the same way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.errors import Problem
from supervisor.eventlog import EventLog, LogState
from supervisor.safefile import UnsafeFileError, check_owner, open_file, replace_atomically
from supervisor.schemas import JsonSource

VERSION = 1


@dataclass
class Checkpoint:
    state: LogState = field(default_factory=LogState)
    log_size: int = 0
    inputs_digest: str | None = None  # of the inputs last evaluated
    valid_until: str | None = None  # until when that evaluation holds for the same inputs
    last_error: str | None = None  # the input problem last reported, to report it once
    observed_at: str | None = None  # of the world last evaluated

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "log_size": self.log_size,
            "summary": self.state.summary,
            "summary_changes": self.state.summary_changes,
            "open": dict(sorted(self.state.open.items())),
            "transitions": dict(sorted(self.state.transitions.items())),
            "inputs_digest": self.inputs_digest,
            "valid_until": self.valid_until,
            "last_error": self.last_error,
            "observed_at": self.observed_at,
        }


def load_checkpoint(path: Path, log: EventLog, warn: Callable[[str], None]) -> Checkpoint:
    checkpoint = _read(path, warn)
    size = log.size()
    if checkpoint is None:
        checkpoint = Checkpoint()
        if size:
            warn(f"{path}: rebuilding the open recommendations from {log.path}")
    elif size < checkpoint.log_size:
        warn(f"{log.path}: shorter than when last checkpointed (rotated?); "
             "keeping the checkpoint's open recommendations")
        checkpoint.log_size = size
        return checkpoint
    if size > checkpoint.log_size:
        # Lines the checkpoint has not seen: a run killed after appending, or a first run.
        events, checkpoint.log_size = log.read(checkpoint.log_size)
        for event in events:
            checkpoint.state.apply(event)
    return checkpoint


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    data = json.dumps(checkpoint.to_json(), ensure_ascii=False, indent=1) + "\n"
    replace_atomically(path, data.encode())


def _read(path: Path, warn: Callable[[str], None]) -> Checkpoint | None:
    if not path.exists() and not path.is_symlink():
        return None
    descriptor = open_file(path, os.O_RDONLY)
    try:
        check_owner(path, descriptor)
        chunks = []
        while chunk := os.read(descriptor, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(descriptor)
    try:
        document = json.loads(b"".join(chunks))
        problems = schemas.check("checkpoint", document, JsonSource(str(path)))
    except (ValueError, RecursionError):
        problems = [Problem(str(path), message="is not valid JSON")]
    if problems:
        _move_aside(path, problems, warn)
        return None
    state = LogState(open=document["open"], transitions=document["transitions"],
                     summary=document.get("summary"),
                     summary_changes=document.get("summary_changes", 0))
    return Checkpoint(state, document["log_size"], document.get("inputs_digest"),
                      document.get("valid_until"), document.get("last_error"),
                      document.get("observed_at"))


def _move_aside(path: Path, problems: list[Problem], warn: Callable[[str], None]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.rename(path, aside)
    except OSError as error:
        raise UnsafeFileError([Problem(str(path), message="is unreadable and cannot be moved "
                                       f"aside: {error.strerror}")]) from None
    for problem in problems:
        warn(f"{problem}")
    warn(f"WARNING: {path} was unreadable; moved it to {aside} and rebuilt the state from the "
         "event log")
