"""The guardrails: each a reason not to act now, with the name `remediation_skipped` gives it.

Pure functions of the history, the holds, the policy set and the time: the planner asks them in
the order of GUARDRAILS and the first that holds an action back is the one reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from jmespath.exceptions import JMESPathError

from supervisor.compiler import truthy
from supervisor.remediation.history import Attempt
from supervisor.remediation.policy import Limits, Weekly, Window
from supervisor.timestamps import parse_time

# Checked in this order; docs/remediation.md lists them (a test keeps the two in step).
GUARDRAILS: dict[str, str] = {
    "untrusted_world": "the world is stale or the inputs are bad: nothing is acted on",
    "hold": "a person placed a hold on the subject or on its node (supervisor hold)",
    "maintenance": "a maintenance window covering the subject is open",
    "root_cause": "a recommendation on the subject is overruled by a root cause, or something it "
                  "depends on (or its node) is still being remediated",
    "in_flight": "an earlier action on the subject has not been verified yet",
    "cooldown": "the last action on the subject was too recent",
    "subject_rate": "the subject had its allowance of actions in the window",
    "hourly_rate": "the hour's allowance of actions, over every subject, is spent",
    "run_rate": "this pass's allowance of actions is spent",
    "bad_arguments": "the policy's arguments could not be filled in for this subject",
}


def in_window(window: Window, now: datetime) -> bool:
    if window.weekly is not None:
        return _in_weekly(window.weekly, now)
    assert window.start is not None and window.end is not None
    return window.start <= now < window.end


def _in_weekly(weekly: Weekly, now: datetime) -> bool:
    local = now.astimezone(weekly.zone)
    moment, day = local.time().replace(tzinfo=None), local.weekday()
    if weekly.start < weekly.end:
        return day in weekly.days and weekly.start <= moment < weekly.end
    # Past midnight (or a whole day when start equals end): the evening part belongs to the day
    # the window opened, the morning part to the day before.
    return ((day in weekly.days and moment >= weekly.start)
            or ((day - 1) % 7 in weekly.days and moment < weekly.end))


def window_end(window: Window, now: datetime) -> datetime:
    """When `window`, open at `now`, closes."""
    if window.weekly is None:
        assert window.end is not None
        return window.end
    local = now.astimezone(window.weekly.zone)
    end = datetime.combine(local.date(), window.weekly.end, tzinfo=window.weekly.zone)
    if end <= local:
        end += timedelta(days=1)
    return end


def open_window(windows: Iterable[Window], now: datetime, document: dict[str, Any],
                matcher: Callable[[Any], Callable[[Any], Any]], subject_id: str
                ) -> tuple[Window, str] | None:
    """The first open window that covers the subject of `document`, and a sentence saying so.

    A window whose `match` fails on this document (a function given null, say) counts as
    covering it: not knowing whether maintenance is on must not let an action through."""
    for window in windows:
        if not in_window(window, now):
            continue
        opened = f"maintenance window {window.id!r} is open"
        if window.match is None:
            return window, opened
        try:
            if truthy(matcher(window.match)(document)):
                return window, opened
        except (JMESPathError, ValueError, TypeError) as error:
            return window, (f"{opened}, and whether it covers {subject_id} is unknown: its "
                            f"match failed: {error}")
    return None


def cooldown_left(attempts: list[Attempt], cooldown: float, now: datetime) -> float:
    """Seconds until another action on the subject may start; 0 when it may now."""
    if not attempts:
        return 0.0
    last = max(parse_time(a.finished_at or a.started_at) for a in attempts)
    return max(0.0, (last + timedelta(seconds=cooldown) - now).total_seconds())


def started_within(attempts: Iterable[Attempt], seconds: float, now: datetime) -> int:
    since = now - timedelta(seconds=seconds)
    return sum(1 for attempt in attempts if parse_time(attempt.started_at) > since)


def rate_reason(limits: Limits, on_subject: list[Attempt], everywhere: list[Attempt],
                this_pass: int, now: datetime) -> tuple[str, str] | None:
    """Which rate limit an action would break, and a sentence saying so."""
    done = started_within(on_subject, limits.subject_window, now)
    if done >= limits.per_subject:
        return "subject_rate", (f"{done} action(s) on this subject in the last "
                                f"{limits.subject_window:g} s (limit {limits.per_subject})")
    done = started_within(everywhere, 3600, now) + this_pass
    if done >= limits.per_hour:
        return "hourly_rate", f"{done} action(s) in the last hour (limit {limits.per_hour})"
    if this_pass >= limits.per_run:
        return "run_rate", f"{this_pass} action(s) in this pass (limit {limits.per_run})"
    return None
