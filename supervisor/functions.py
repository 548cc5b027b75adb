"""JMESPath functions for rules, on top of the standard ones.

Each function's docstring is its user documentation (docs/rules.md repeats it, and a test keeps
the two in step). Functions that depend on time read the evaluation's "now", never the clock.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from jmespath import functions
from jmespath.exceptions import JMESPathTypeError

from supervisor.timestamps import parse_time

_parse_time = lru_cache(maxsize=1 << 16)(parse_time)


class RuleFunctions(functions.Functions):
    """The function table rules evaluate with, bound to one evaluation time."""

    def __init__(self, now: datetime) -> None:
        super().__init__()
        self.now = now
        # Every moment a time function compared with now: an evaluation of the same inputs can
        # only change when now passes one of them plus some threshold (see engine.valid_until).
        # With the subjects whose evaluations saw it (the engine and the batch say whose turn
        # it is): a later evaluation of only some subjects must know whether the moment the
        # last one holds until was seen by a subject it does not evaluate again (incremental.py).
        self.subject: Any = None
        self.moments: dict[datetime, set[Any]] = {}

    def _timestamp(self, function: str, value: str) -> datetime:
        try:
            moment = _parse_time(value)
        except ValueError:
            raise JMESPathTypeError(function, value, "string", ["RFC 3339 timestamp"]) from None
        seen = self.moments.get(moment)
        if seen is None:
            seen = self.moments[moment] = set()
        seen.add(self.subject)
        return moment

    @functions.signature({"types": ["string", "null"]})
    def _func_age_seconds(self, timestamp: str | None) -> float | None:
        """`age_seconds(timestamp)`: seconds from `timestamp` to now (negative if it is later);
        null when `timestamp` is null."""
        if timestamp is None:
            return None
        seconds = (self.now - self._timestamp("age_seconds", timestamp)).total_seconds()
        return int(seconds) if seconds.is_integer() else seconds

    @functions.signature({"types": ["string", "null"]})
    def _func_ahead_seconds(self, timestamp: str | None) -> float | None:
        """`ahead_seconds(timestamp)`: seconds from now to `timestamp` (negative if it is
        earlier): how far in the future a clock that wrote it runs; null when `timestamp` is
        null."""
        if timestamp is None:
            return None
        seconds = (self._timestamp("ahead_seconds", timestamp) - self.now).total_seconds()
        return int(seconds) if seconds.is_integer() else seconds

    @functions.signature({"types": ["array"]}, {"types": ["number"]})
    def _func_failed_streak(self, deployments: list[Any], window_seconds: float) -> int:
        """`failed_streak(deployments, window_seconds)`: how many deployments failed in a row
        since the last one that succeeded, counting only those that ended (or, unfinished,
        started) in the `window_seconds` before now. Running deployments neither count nor
        break the streak; deployments after now are ignored."""
        if not deployments:
            return 0
        latest_first = sorted(
            (self._deployment_time(deployment), index, deployment)
            for index, deployment in enumerate(deployments)
        )[::-1]
        streak = 0
        for moment, _, deployment in latest_first:
            status = deployment.get("status")
            if status == "running" or moment > self.now:
                continue
            if status != "failed" or (self.now - moment).total_seconds() > window_seconds:
                break
            streak += 1
        return streak

    def _deployment_time(self, deployment: Any) -> datetime:
        if not isinstance(deployment, dict):
            raise JMESPathTypeError("failed_streak", deployment, type(deployment).__name__,
                                    ["deployment object"])
        moment = deployment.get("finished_at") or deployment.get("started_at")
        if not isinstance(moment, str):
            raise JMESPathTypeError("failed_streak", moment, "null", ["RFC 3339 timestamp"])
        return self._timestamp("failed_streak", moment)

    @functions.signature({"types": ["array"]}, {"types": ["object"]})
    def _func_attach(self, items: list[Any], extra: dict[str, Any]) -> list[Any]:
        """`attach(array, object)`: the array with the object's keys added to every element
        that is an object. A filter only sees its element, so this is how it reads a value from
        outside: `attach(dependencies, {limit: params.node_heartbeat_seconds})[?age > limit]`."""
        return [{**item, **extra} if isinstance(item, dict) else item for item in items]

    @functions.signature({"types": ["number", "null"]})
    def _func_duration(self, seconds: float | None) -> str | None:
        """`duration(seconds)`: a short human reading of a number of seconds, such as `2h5m`
        or `45s`; null stays null."""
        if seconds is None:
            return None
        sign, remaining = ("-" if seconds < 0 else ""), int(abs(seconds))
        parts = []
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if remaining >= size:
                parts.append(f"{remaining // size}{unit}")
                remaining %= size
        if remaining or not parts:
            parts.append(f"{remaining}s")
        return sign + "".join(parts)

    @functions.signature({"types": ["number"]}, {"types": ["string"]})
    def _func_plural(self, count: float, noun: str) -> str:
        """`plural(count, noun)`: the count and the noun, with an `s` unless the count is 1:
        `plural(`1`, 'deployment')` is `1 deployment`, `plural(`3`, 'deployment')` is
        `3 deployments`."""
        shown = int(count) if float(count).is_integer() else count
        return f"{shown} {noun}{'' if count == 1 else 's'}"


def function_names() -> list[str]:
    """Every function a rule may call, standard and ours."""
    return sorted(RuleFunctions.FUNCTION_TABLE)


def custom_function_docs() -> dict[str, str]:
    """Our functions and their documentation, from their docstrings."""
    return {
        name[len("_func_"):]: " ".join((getattr(RuleFunctions, name).__doc__ or "").split())
        for name in sorted(vars(RuleFunctions))
        if name.startswith("_func_")
    }
