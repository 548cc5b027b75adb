"""Timestamps from the future (issue 11, item 10): a world observed, or a node last seen, further
ahead of now than the allowed clock skew is not trusted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, evaluate_dir, keys, ok
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs
from supervisor.timestamps import parse_time
from supervisor.transitions import Paths, run_once

TWO_NODES = {"n1": "services:\n  app: {depends_on: [n2/db]}\n", "n2": "services:\n  db: {}\n"}
SKEWED_WORLD = {("world", "world", "clock_skew", "reconcile_blocked", "check_clock")}


def test_a_world_from_the_future_is_the_only_recommendation(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}})
    # The world was observed at 10:00; now is more than 5 minutes before it.
    evaluation = evaluate_dir(root, now="2026-11-26T09:54:59Z")
    assert keys(evaluation) == SKEWED_WORLD
    assert evaluation.summary == "unstable"
    (skewed,) = evaluation.recommendations
    assert skewed.freezes_resolution
    assert skewed.reason == ("the world was observed at 2026-11-26T10:00:00Z, 5m1s ahead of now "
                             "(allowed skew 5m): check the observer's clock and this machine's")
    assert keys(evaluate_dir(root, now="2026-11-26T09:55:00Z")) != SKEWED_WORLD
    # Plain eval takes now from observed_at: never skewed.
    assert keys(evaluate_dir(root)) != SKEWED_WORLD


def test_max_skew_sets_the_allowed_skew(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()})
    args = ["eval", str(root), "--now", "2026-11-26T09:00:00Z", "--format", "json"]
    runner = CliRunner()
    skewed = runner.invoke(app, args)
    assert skewed.exit_code == 0, skewed.stderr
    assert '"condition": "clock_skew"' in skewed.stdout
    allowed = runner.invoke(app, [*args, "--max-skew", "3600"])
    assert allowed.exit_code == 0, allowed.stderr
    assert '"recommendations": []' in allowed.stdout
    bad = runner.invoke(app, [*args, "--max-skew", "nan"])
    assert bad.exit_code == 2
    assert "--max-skew: must be a number of seconds, 0 or more" in bad.stderr


def test_run_resolves_nothing_while_the_world_is_from_the_future(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    paths = Paths(tmp_path / "state" / "events.log", tmp_path / "state" / "checkpoint.json")
    homelab = Inputs(inventory=FIXTURES / "homelab" / "hosts", world=FIXTURES / "homelab" / "world")

    def at(text: str) -> Any:
        return lambda: parse_time(text)

    run_once(homelab, paths, clock=at("2026-11-26T10:01:00Z"), warn=lambda _: None)
    opened = {e["fingerprint"] for e in EventLog(paths.events).read()
              if e["type"].startswith("reconcile_")}
    # The wall clock jumps back a day (a dead RTC battery, say): the world is from the future.
    run_once(homelab, paths, clock=at("2026-11-25T10:01:00Z"), warn=lambda _: None)
    events = EventLog(paths.events).read()
    assert not any(e["type"] == "reconcile_resolved" for e in events)
    (skewed,) = [e for e in events if e.get("condition") == "clock_skew"]
    assert skewed["type"] == "reconcile_blocked"
    assert opened  # the earlier recommendations are still open beside it


def test_a_run_notices_when_the_clock_catches_up(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()})
    evaluation = evaluate_dir(root, now="2026-11-26T09:00:00Z")
    assert keys(evaluation) == SKEWED_WORLD
    # Unchanged inputs are evaluated again no later than when the skew falls within bounds.
    assert evaluation.valid_until is not None
    assert evaluation.valid_until <= datetime(2026, 11, 26, 9, 55, tzinfo=UTC)


def test_a_node_last_seen_in_the_future_gives_no_heartbeat(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, nodes={
        "n1": {"status": "online", "last_seen": "2026-11-26T09:59:00Z"},
        "n2": {"status": "online", "last_seen": "2027-11-26T10:00:00Z"}},
        services={"n1/app": {"status": "failed"}})
    evaluation = evaluate_dir(root)
    assert keys(evaluation) == {
        ("node", "n2", "clock_skew", "reconcile_required", "check_clock"),
        ("service", "n1/app", "dependency_unavailable", "reconcile_blocked",
         "delayed_deployment"),
    }
    skewed = next(r for r in evaluation.recommendations if r.condition == "clock_skew")
    assert skewed.reason == ("n2 was last seen at 2027-11-26T10:00:00Z, 365d ahead of now "
                             "(allowed skew 5m): that is no heartbeat; check its clock")
    assert skewed.summary == "unstable"


@pytest.mark.parametrize(("last_seen", "skewed"), [("2026-11-26T10:05:00Z", False),
                                                   ("2026-11-26T10:05:01Z", True)])
def test_a_node_may_run_ahead_by_the_allowed_skew(scenario: ScenarioFactory, last_seen: str,
                                                  skewed: bool) -> None:
    root = scenario({"n1": "services: {}\n"},
                    nodes={"n1": {"status": "online", "last_seen": last_seen}})
    assert bool(keys(evaluate_dir(root))) is skewed
