"""Delivery: the event log's transitions, sent where people look (`supervisor notify ...`).

The evaluator has no network; a notifier is a separate consumer of its log, with a durable
cursor (`cursor.py`) over a read-only view of the log (`feed.py`). Each kind of receiver is a
module behind the `Notifier` protocol, registered by name in `NOTIFIERS`; `deliver.py` runs any
of them, once or following the log, with retries.

Importing this package imports nothing heavy: the CLI registers its commands at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from supervisor.errors import SupervisorError

if TYPE_CHECKING:
    from supervisor.notify.cursor import Batch

# name -> module holding its `Notifier` class; the command of the same name builds it.
NOTIFIERS: dict[str, str] = {
    "alertmanager": "supervisor.notify.alertmanager",
    "apprise": "supervisor.notify.apprise",
}


class Notifier(Protocol):
    """One kind of receiver. `receivers` name the places it delivers to (each tracked apart in
    the outbox); `refresh_interval`, when set, is how often the open set must be sent again
    even when nothing changed (Alertmanager forgets alerts that are not re-posted)."""

    name: str
    receivers: list[str]
    refresh_interval: float | None

    def describe(self, receiver: str) -> str:
        """The receiver as it may be printed: without passwords or tokens."""
        ...

    def send(self, receiver: str, batches: list[Batch],
             open_now: Mapping[str, dict[str, Any]]) -> int:
        """Delivers `batches` (oldest first; none for a refresh) and returns how many the
        receiver accepted; raises `Undelivered` when it failed part way or not at all."""
        ...


class Undelivered(Exception):
    """The receiver did not accept (down, 5xx, timeout): try again later."""

    def __init__(self, reason: str, accepted: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.accepted = accepted


class ReceiverError(SupervisorError):
    """A receiver URL that cannot be used, found at start."""
