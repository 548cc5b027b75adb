"""Notifications through apprise (ntfy, Gotify, MQTT, e-mail, webhooks ...), for homelabs
without Alertmanager: one message per run that changed something.

The title carries the summary state and what changed; the body has one line per transition
(subject, action, reason), at most `MAX_LINES` of them, since a phone shows a screenful. The
message type, apprise's severity (colour, icon, and priority where the service maps it), comes
from the highest severity the run opened: critical is a failure, warning a warning, info an
info; a run that only resolved is a success.

apprise is an optional dependency (`pip install 'homelab-supervisor[notify]'`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from supervisor.errors import Problem
from supervisor.notify import ReceiverError, Undelivered
from supervisor.notify.cursor import CHANGED, CLOSED, OPENED, Batch, Transition

MAX_LINES = 40
_SEVERITY_ORDER = ("info", "warning", "critical")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """No control characters reach a terminal or a notification: they are shown escaped."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", str(text))


def title(batch: Batch) -> str:
    counts: dict[str, int] = {}
    for transition in batch.transitions:
        counts[transition.kind] = counts.get(transition.kind, 0) + 1
    changes = ", ".join(f"{counts[kind]} {kind}" for kind in (OPENED, CHANGED, CLOSED)
                        if kind in counts)
    return clean(f"homelab {batch.summary or 'state unknown'}: {changes} [{batch.instance}]")


def line(transition: Transition) -> str:
    if transition.kind == CLOSED and transition.before is not None:
        before = transition.before
        return clean(f"resolved {before['subject']['id']}: {before['action']} no longer needed "
                     f"({before['condition']})")
    shown = transition.line
    return clean(f"{transition.kind} {shown['subject']['id']}: {shown['action']} "
                 f"({shown['severity']}) {shown.get('reason') or ''}").rstrip()


def body(batch: Batch) -> str:
    lines = [line(transition) for transition in batch.transitions]
    if len(lines) > MAX_LINES:
        hidden = len(lines) - MAX_LINES + 1
        lines = [*lines[: MAX_LINES - 1], f"... and {hidden} more: run `supervisor eval`"]
    return "\n".join(lines)


def severity(batch: Batch) -> str | None:
    """The highest severity the run opened or changed to; None when it only resolved."""
    found = [t.line.get("severity") for t in batch.transitions if t.kind != CLOSED]
    ranked = [_SEVERITY_ORDER.index(s) for s in found if s in _SEVERITY_ORDER]
    return _SEVERITY_ORDER[max(ranked)] if ranked else None


class AppriseNotifier:
    name = "apprise"
    refresh_interval: float | None = None

    def __init__(self, urls: list[str]) -> None:
        try:
            import apprise
        except ImportError:
            raise ReceiverError([Problem("apprise", message="is not installed: pip install "
                                         "'homelab-supervisor[notify]'")]) from None
        self._apprise = apprise
        self._services: dict[str, Any] = {}
        unknown = []
        for url in urls:
            service = apprise.Apprise()
            if not service.add(url):
                unknown.append(Problem(url, message="is not an apprise URL this installation "
                                       "understands (see https://appriseit.com/services/)"))
            self._services[url] = service
        if unknown:
            raise ReceiverError(unknown)
        self.receivers = list(self._services)

    def describe(self, receiver: str) -> str:
        return str(self._services[receiver][0].url(privacy=True))

    def send(self, receiver: str, batches: list[Batch],
             open_now: Mapping[str, dict[str, Any]]) -> int:
        apprise = self._apprise
        types = {None: apprise.NotifyType.SUCCESS, "info": apprise.NotifyType.INFO,
                 "warning": apprise.NotifyType.WARNING, "critical": apprise.NotifyType.FAILURE}
        service = self._services[receiver]
        for accepted, batch in enumerate(batches):
            with apprise.LogCapture(level=apprise.logging.WARNING) as log:
                sent = service.notify(body=body(batch), title=title(batch),
                                      notify_type=types[severity(batch)])
            if not sent:
                reason = " ".join(log.getvalue().split()) or "apprise could not send"
                raise Undelivered(reason[:300], accepted)
        return len(batches)
