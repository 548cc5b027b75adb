"""Holds: a person says "leave this alone" (`supervisor hold SUBJECT`), and remediation does,
until the hold is released or lapses. Kept in a small JSON file with who, when and why.

A hold on a node covers every service on it. Changes take a lock beside the file and replace
it atomically, so two people holding at once both get their hold.
"""

from __future__ import annotations

import getpass
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from supervisor import schemas
from supervisor.errors import InputError, Problem
from supervisor.loader import load_json
from supervisor.safefile import locked, replace_atomically
from supervisor.schemas import JsonSource
from supervisor.timestamps import format_time, parse_time


class Hold(NamedTuple):
    subject: str  # a node, or <node>/<service>
    by: str
    at: str
    until: str | None = None
    reason: str = ""

    def active(self, now: datetime) -> bool:
        return self.until is None or now < parse_time(self.until)

    def covers(self, subject_id: str) -> bool:
        return subject_id == self.subject or subject_id.startswith(self.subject + "/")

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"by": self.by, "at": self.at}
        if self.until is not None:
            entry["until"] = self.until
        if self.reason:
            entry["reason"] = self.reason
        return entry


def read_holds(path: Path) -> dict[str, Hold]:
    """Every hold in the file, lapsed ones included; none when there is no file."""
    if not path.exists() and not path.is_symlink():
        return {}
    document = load_json(path, follow=False)
    problems = schemas.check("holds", document, JsonSource(str(path)))
    if problems:
        raise InputError(problems)
    return {subject: Hold(subject=subject, by=entry["by"], at=entry["at"],
                          until=entry.get("until"), reason=entry.get("reason", ""))
            for subject, entry in document["holds"].items()}


def holding(holds: dict[str, Hold], subject_id: str, now: datetime) -> Hold | None:
    """The active hold that covers `subject_id`, its own before its node's."""
    for hold in sorted(holds.values(), key=lambda h: -len(h.subject)):
        if hold.covers(subject_id) and hold.active(now):
            return hold
    return None


def place(path: Path, subject: str, now: datetime, *, until: str | None = None,
          reason: str = "", by: str | None = None) -> Hold:
    _check_subject(subject)
    if until is not None:
        try:
            if parse_time(until) <= now:
                raise InputError([Problem("--until", message=f"{until} is not in the future")])
        except ValueError as error:
            raise InputError([Problem("--until", message=str(error))]) from None
    hold = Hold(subject=subject, by=by or _who(), at=format_time(now),
                until=format_time(parse_time(until)) if until else None, reason=reason)
    with locked(_lock(path)):
        holds = read_holds(path)
        holds[subject] = hold
        _write(path, holds, now)
    return hold


def release(path: Path, subject: str, now: datetime) -> Hold | None:
    """Removes the hold on exactly `subject`; returns it, or None when there was none."""
    with locked(_lock(path)):
        holds = read_holds(path)
        released = holds.pop(subject, None)
        if released is not None:
            _write(path, holds, now)
    return released


def _write(path: Path, holds: dict[str, Hold], now: datetime) -> None:
    kept = {subject: hold.to_json() for subject, hold in sorted(holds.items())
            if hold.active(now)}  # lapsed holds are dropped the next time the file changes
    data = json.dumps({"version": 1, "holds": kept}, indent=1, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, data.encode())


def _lock(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _who() -> str:
    """The person behind the command: through sudo, the one who ran sudo."""
    sudo = os.environ.get("SUDO_USER")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{sudo} (via sudo)" if sudo and sudo != user else user


def _check_subject(subject: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}(/[a-z0-9][a-z0-9_.-]{0,62})?", subject):
        raise InputError([Problem("SUBJECT", message=f"{subject!r} is not a node or "
                                  "<node>/<service>")])
