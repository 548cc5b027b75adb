"""Alertmanager (API v2): one alert per open recommendation, kept in step with the log.

Alertmanager holds alerts in memory and resolves one that is not posted again within its
`resolve_timeout`, so the whole open set is posted again every `refresh_interval` seconds
(and at once after Alertmanager restarts, since that post fails until it is back). A
resolution is posted with `endsAt`, so receivers get "resolved". Labels stay the same for a
recommendation's life, so Alertmanager deduplicates the re-posts; `startsAt` is when the
recommendation opened, taken from the log, so an alert's age does not restart on every post.
"""

from __future__ import annotations

import http.client
import json
import shlex
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from supervisor.errors import Problem
from supervisor.notify import ReceiverError, Undelivered
from supervisor.notify.cursor import Batch
from supervisor.replay import SOURCE

BATCH = 1000  # alerts per POST: large enough to be quick, small enough for any proxy's limit
TIMEOUT = 10.0  # seconds per request


def alertname(condition: str) -> str:
    """`unhealthy_service` -> `HomelabUnhealthyService`: Prometheus's naming, our prefix."""
    return "Homelab" + "".join(part[:1].upper() + part[1:] for part in condition.split("_"))


def labels(line: dict[str, Any]) -> dict[str, str]:
    """What identifies the alert; nothing here changes while the recommendation stays as is."""
    subject = line["subject"]
    found = {
        "alertname": alertname(line["condition"]), "subject": subject["id"],
        "kind": subject["kind"], "condition": line["condition"], "action": line["action"],
        "event": line["type"], "severity": line["severity"], "rule": line["rule"],
        "instance": line["instance"], "source": SOURCE,
    }
    if subject["kind"] == "service" and "/" in subject["id"]:
        found["node"], found["service"] = subject["id"].split("/", 1)
    elif subject["kind"] == "node":
        found["node"] = subject["id"]
    return {name: value for name, value in found.items() if value}  # empty = absent, to AM


def alert(line: dict[str, Any], ends_at: str | None = None) -> dict[str, Any]:
    reason = str(line.get("reason") or "")
    subject = line["subject"]["id"]
    posted: dict[str, Any] = {
        "labels": labels(line),
        "annotations": {
            "summary": f"{subject}: {line['action']}", "reason": reason,
            "fingerprint": line["fingerprint"],
            "explain": f"supervisor explain {shlex.quote(subject)}",
        },
        "startsAt": line["opened_at"],
    }
    if ends_at is not None:
        posted["endsAt"] = ends_at
    return posted


def alerts_for(batches: list[Batch], open_now: Mapping[str, dict[str, Any]]
               ) -> list[dict[str, Any]]:
    """Every open alert, after the resolutions in `batches` whose labels are not open again.

    A changed recommendation (new action, say) has new labels: its old alert is resolved."""
    current = [alert(line) for line in open_now.values()]
    open_labels = {_frozen(posted["labels"]) for posted in current}
    resolved: dict[frozenset[tuple[str, str]], dict[str, Any]] = {}
    for batch in batches:
        for transition in batch.transitions:
            if transition.before is None:
                continue
            ends_at = transition.line["ts"]
            posted = alert(transition.before, ends_at=ends_at)
            frozen = _frozen(posted["labels"])
            if frozen not in open_labels:
                resolved[frozen] = posted
    return [*resolved.values(), *current]


def _frozen(mapping: dict[str, str]) -> frozenset[tuple[str, str]]:
    return frozenset(mapping.items())


class Alertmanager:
    name = "alertmanager"

    def __init__(self, url: str, *, refresh_interval: float = 60.0, batch: int = BATCH) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ReceiverError([Problem(url, message="is not an Alertmanager URL (expected "
                                         "http://HOST:PORT, e.g. http://127.0.0.1:9093)")])
        self.base = url.rstrip("/")
        self.receivers = [self.base]
        self.refresh_interval: float | None = refresh_interval
        self.batch = batch

    def describe(self, receiver: str) -> str:
        parts = urllib.parse.urlsplit(receiver)
        host = parts.hostname or ""
        return parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")).geturl()

    def send(self, receiver: str, batches: list[Batch],
             open_now: Mapping[str, dict[str, Any]]) -> int:
        posted = alerts_for(batches, open_now)
        for start in range(0, len(posted), self.batch):
            self._post(posted[start:start + self.batch])
        return len(batches)

    def _post(self, alerts: list[dict[str, Any]]) -> None:
        request = urllib.request.Request(
            f"{self.base}/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                response.read()
        except urllib.error.HTTPError as error:
            body = error.read(200).decode(errors="replace").strip()
            raise Undelivered(f"Alertmanager answered {error.code} {error.reason}"
                              + (f": {body}" if body else "")) from None
        except urllib.error.URLError as error:
            raise Undelivered(f"Alertmanager unreachable: {error.reason}") from None
        except (OSError, http.client.HTTPException) as error:
            raise Undelivered(f"Alertmanager unreachable: {error}") from None

