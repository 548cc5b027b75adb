from __future__ import annotations

from typing import Any

import jmespath
import pytest
from jmespath.exceptions import JMESPathTypeError

from supervisor.functions import RuleFunctions, custom_function_docs
from supervisor.timestamps import parse_time

NOW = parse_time("2026-11-26T10:00:00Z")


def search(expression: str, data: Any) -> Any:
    options = jmespath.Options(custom_functions=RuleFunctions(NOW))
    return jmespath.search(expression, data, options=options)


def deployment(status: str, finished: str | None, started: str = "2026-11-26T00:00:00Z") -> dict[str, Any]:
    record = {"id": finished or started, "service": "n1/web", "status": status, "started_at": started}
    if finished:
        record["finished_at"] = finished
    return record


def test_age_seconds() -> None:
    assert search("age_seconds(@)", "2026-11-26T09:55:00Z") == 300
    assert search("age_seconds(@)", "2026-11-26T11:55:00+02:00") == 300
    assert search("age_seconds(@)", "2026-11-26T10:00:01.5Z") == -1.5
    assert search("age_seconds(@)", None) is None


def test_age_seconds_rejects_non_timestamps() -> None:
    with pytest.raises(JMESPathTypeError):
        search("age_seconds(@)", "last tuesday")
    with pytest.raises(JMESPathTypeError):
        search("age_seconds(@)", 5)


@pytest.mark.parametrize(("history", "streak"), [
    ([], 0),
    ([("succeeded", "08:00")], 0),
    ([("succeeded", "07:00"), ("failed", "08:00")], 1),
    ([("failed", "07:00"), ("failed", "08:00"), ("failed", "09:00")], 3),
    ([("failed", "07:00"), ("failed", "08:00"), ("succeeded", "09:00")], 0),
    ([("failed", "07:00"), ("succeeded", "08:00"), ("failed", "09:00")], 1),
    # A running deployment neither counts nor breaks the streak.
    ([("failed", "07:00"), ("failed", "08:00"), ("running", None)], 2),
])
def test_failed_streak(history: list[tuple[str, str | None]], streak: int) -> None:
    records = [deployment(status, f"2026-11-26T{at}:00Z" if at else None,
                          started=f"2026-11-26T{at or '09:30'}:00Z")
               for status, at in history]
    assert search("failed_streak(@, `86400`)", records) == streak


def test_failed_streak_only_counts_the_window_and_the_past() -> None:
    records = [
        deployment("failed", "2026-11-25T08:00:00Z"),  # older than 24 h: forgotten
        deployment("failed", "2026-11-26T09:00:00Z"),
        deployment("failed", "2026-11-26T11:00:00Z"),  # after now: not yet happened
    ]
    assert search("failed_streak(@, `86400`)", records) == 1
    assert search("failed_streak(@, `7200`)", records) == 1
    assert search("failed_streak(@, `600`)", records) == 0


def test_failed_streak_orders_by_time_not_by_list_position() -> None:
    records = [deployment("failed", "2026-11-26T09:00:00Z"),
               deployment("succeeded", "2026-11-26T08:00:00Z")]
    assert search("failed_streak(@, `86400`)", records) == 1


def test_failed_streak_rejects_non_deployments() -> None:
    with pytest.raises(JMESPathTypeError):
        search("failed_streak(@, `60`)", ["x"])


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (45, "45s"), (600, "10m"), (7500, "2h5m"), (90061, "1d1h1m1s"), (-30, "-30s"),
    (None, None)])
def test_duration(seconds: float | None, text: str | None) -> None:
    assert search("duration(@)", seconds) == text


def test_every_custom_function_has_documentation() -> None:
    docs = custom_function_docs()
    assert set(docs) == {"age_seconds", "ahead_seconds", "failed_streak", "duration", "attach",
                         "plural"}
    for name, doc in docs.items():
        assert doc.startswith(f"`{name}("), name


def test_plural_counts_in_words() -> None:
    assert search("plural(`1`, 'deployment')", None) == "1 deployment"
    assert search("plural(`0`, 'deployment')", None) == "0 deployments"
    assert search("plural(`3.0`, 'restart')", None) == "3 restarts"
    assert search("plural(`1.5`, 'day')", None) == "1.5 days"


def test_ahead_seconds() -> None:
    assert search("ahead_seconds(@)", "2026-11-26T10:05:00Z") == 300
    assert search("ahead_seconds(@)", "2026-11-26T09:59:58.5Z") == -1.5
    assert search("ahead_seconds(@)", None) is None
