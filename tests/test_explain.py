from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, ok
from typer.testing import CliRunner

from supervisor.clauses import Clause
from supervisor.cli import app
from supervisor.engine import evaluate
from supervisor.errors import InputError
from supervisor.explain import Explanation, RuleTrace, explain, resolve
from supervisor.inputs import Inputs, load

HOMELAB = FIXTURES / "homelab"


def explained(directory: Path, subject: str, now: str | None = None) -> Explanation:
    loaded = load(Inputs(inventory=directory / "hosts", world=directory / "world", now=now,
                         remediations=directory / "remediations.json"))
    target = resolve(loaded.state, subject)
    evaluation = evaluate(loaded.state, loaded.rules, trace={target})
    return explain(loaded.state, loaded.rules, evaluation, target)


def entry(explanation: Explanation, rule: str) -> RuleTrace:
    return next(e for e in explanation.trace if e.rule.id == rule)


def flat(clause: Clause | None) -> list[tuple[str, Any, str]]:
    """Every clause, depth first, as (expression, value, detail)."""
    assert clause is not None
    found = [(clause.text, clause.value if clause.evaluated else "not evaluated", clause.detail)]
    for child in clause.clauses:
        found.extend(flat(child))
    return found


# For every default rule: a subject where it fires and one where it does not, with the clause
# that decides it and the values that clause saw.
CASES = [
    ("world-stale", "stale-world", "world", "2026-11-26T10:20:00Z", "fired",
     ("age_seconds(world.observed_at) > params.max_world_age_seconds", True, "1200 > 600")),
    ("world-stale", "homelab", "world", None, "did not match",
     ("age_seconds(world.observed_at) > params.max_world_age_seconds", False, "0 > 600")),
    ("node-offline", "homelab", "lab01", None, "fired",
     ("node.actual.status == 'offline'", True, "'offline' == 'offline'")),
    ("node-offline", "homelab", "nas01", None, "did not match",
     ("age_seconds(node.actual.last_seen) > params.node_heartbeat_seconds", False, "60 > 300")),
    ("deployment-failures-repeated", "repeated-failures-unhealthy", "git01/forgejo", None, "fired",
     (("failed_streak(deployments, params.deployment_window_seconds) >= "
      "params.deployment_failures_to_block"), True, "3 >= 3")),
    ("deployment-failures-repeated", "failed-deployment-two", "wiki01/outline", None,
     "did not match", (("failed_streak(deployments, params.deployment_window_seconds) >= "
                       "params.deployment_failures_to_block"), False, "2 >= 3")),
    ("remediation-failures-repeated", "remediation-failures-repeated", "media01/jellyfin", None,
     "fired", (("failed_streak(remediations, params.remediation_window_seconds) >= "
                "params.remediation_failures_to_block"), True, "3 >= 3")),
    ("remediation-failures-repeated", "remediation-failures-repeated", "media01/sonarr", None,
     "did not match", (("failed_streak(remediations, params.remediation_window_seconds) >= "
                        "params.remediation_failures_to_block"), False, "1 >= 3")),
    ("remediation-in-flight", "remediation-in-flight", "media01/jellyfin", None, "fired",
     ("remediations[?status == 'running']", [None], "")),
    ("remediation-in-flight", "remediation-in-flight", "media01/sonarr", None, "did not match",
     ("remediations[?status == 'running']", [], "")),
    ("world-clock-skew", "clock-skew-world", "world", "2026-11-26T09:00:00Z", "fired",
     ("ahead_seconds(world.observed_at) > params.max_clock_skew_seconds", True, "3600 > 300")),
    ("world-clock-skew", "homelab", "world", None, "did not match",
     ("ahead_seconds(world.observed_at) > params.max_clock_skew_seconds", False, "0 > 300")),
    ("node-clock-skew", "clock-skew-node", "pve2", None, "fired",
     ("ahead_seconds(node.actual.last_seen) > params.max_clock_skew_seconds", True,
      "31536000 > 300")),
    ("node-clock-skew", "homelab", "nas01", None, "did not match",
     ("ahead_seconds(node.actual.last_seen) > params.max_clock_skew_seconds", False,
      "-60 > 300")),
    ("dependency-unavailable", "homelab", "edge01/home-assistant", None, "fired",
     ("service.actual.status != 'ok'", True, "'degraded' != 'ok'")),
    ("dependency-unavailable", "homelab", "media01/sonarr", None, "did not match",
     (("length(attach(dependencies, {heartbeat: params.node_heartbeat_seconds, skew: "
       "params.max_clock_skew_seconds})[?actual == "
       "`null` || actual.status != 'ok' && !(desired.one_shot && actual.status == 'stopped') "
       "|| host.actual == `null` || host.actual.status == 'offline' "
       "|| age_seconds(host.actual.last_seen) > heartbeat "
       "|| ahead_seconds(host.actual.last_seen) > skew]) > `0`"), False, "0 > 0")),
    ("deployment-failed", "failed-deployment-two", "wiki01/outline", None, "fired",
     ("failed_streak(deployments, params.deployment_window_seconds) >= `1`", True, "2 >= 1")),
    ("deployment-failed", "repeated-failures-unhealthy", "git01/forgejo", None, "overruled",
     ("failed_streak(deployments, params.deployment_window_seconds) >= `1`", True, "3 >= 1")),
    ("deployment-failed", "homelab", "nas01/postgres", None, "did not match",
     ("failed_streak(deployments, params.deployment_window_seconds) >= `1`", False, "0 >= 1")),
    ("service-missing", "homelab", "edge01/zigbee2mqtt", None, "fired",
     ("service.actual == `null`", True, "null == null")),
    ("service-missing", "homelab", "lab01/code-server", None, "overruled",
     ("service.actual == `null`", True, "null == null")),
    ("service-missing", "homelab", "nas01/postgres", None, "did not match",
     ("service.actual == `null`", False, "")),
    ("service-unhealthy", "homelab", "media01/sonarr", None, "fired",
     ("service.actual.status != 'ok'", True, "'failed' != 'ok'")),
    ("service-unhealthy", "homelab", "edge01/home-assistant", None, "overruled",
     ("service.actual.status != 'ok'", True, "'degraded' != 'ok'")),
    ("service-unhealthy", "homelab", "nas01/postgres", None, "did not match",
     ("service.actual.status != 'ok'", False, "'ok' != 'ok'")),
    ("service-incident", "homelab", "media01/jellyfin", None, "fired",
     ("incidents[?status != 'resolved']", [None], "")),
    ("service-incident", "homelab", "nas01/postgres", None, "did not match",
     ("incidents[?status != 'resolved']", [], "")),
    ("node-incident", "incident-on-node", "nuc02", None, "fired",
     ("incidents[?status != 'resolved']", [None], "")),
    ("node-incident", "homelab", "nas01", None, "did not match",
     ("incidents[?status != 'resolved']", [], "")),
    ("service-unmanaged", "unmanaged-service", "docker01/watchtower", None, "fired",
     ("service.desired == `null`", True, "null == null")),
    ("service-unmanaged", "homelab", "nas01/postgres", None, "did not match",
     ("service.desired == `null`", False, "")),
]


@pytest.mark.parametrize(("rule", "fixture", "subject", "now", "outcome", "clause"), CASES,
                         ids=[f"{c[0]}-{c[4].replace(' ', '-')}-{c[2]}" for c in CASES])
def test_default_rule_trace(rule: str, fixture: str, subject: str, now: str | None, outcome: str,
                            clause: tuple[str, Any, str]) -> None:
    traced = entry(explained(FIXTURES / fixture, subject, now), rule)
    assert traced.outcome.outcome == outcome
    text, value, detail = clause
    matching = [c for c in flat(traced.clauses) if c[0] == text]
    assert matching, [c[0] for c in flat(traced.clauses)]
    _seen_text, seen_value, seen_detail = matching[0]
    if value == [None]:  # a non-empty list of incidents: only its length matters here
        assert isinstance(seen_value, list) and seen_value
    else:
        assert seen_value == value
    if detail:
        assert seen_detail == detail


def test_every_default_rule_has_a_firing_and_a_quiet_trace() -> None:
    from supervisor.rules import default_rules_dir, load_rules

    rules = {rule.id for rule in load_rules([default_rules_dir()]).rules}
    assert {c[0] for c in CASES if c[4] == "fired"} == rules
    assert {c[0] for c in CASES if c[4] == "did not match"} == rules


def test_eval_and_explain_agree_on_every_subject() -> None:
    loaded = load(Inputs(inventory=HOMELAB / "hosts", world=HOMELAB / "world"))
    plain = evaluate(loaded.state, loaded.rules)
    subjects = [s for kind in loaded.state.subjects.values() for s in kind]
    traced = evaluate(loaded.state, loaded.rules, trace=set(subjects))
    assert traced.recommendations == plain.recommendations
    for subject in subjects:
        explanation = explain(loaded.state, loaded.rules, traced, subject)
        mine = tuple(r for r in plain.recommendations if r.subject == subject)
        assert explanation.recommendations == mine
        fired = {e.rule.id for e in explanation.trace if e.outcome.outcome == "fired"}
        assert fired == {r.rule for r in mine}, subject


def test_overruled_rule_names_its_root_cause() -> None:
    traced = entry(explained(HOMELAB, "lab01/code-server"), "service-missing")
    assert traced.outcome.overruled_by is not None
    assert (traced.outcome.overruled_by.rule, traced.outcome.overruled_by.subject.id) == (
        "node-offline", "lab01")


def test_offline_node_lists_what_it_overrules_and_its_services() -> None:
    explanation = explained(HOMELAB, "lab01")
    assert {(r.subject.id, r.action) for r in explanation.overrules} == {
        ("lab01/code-server", "redeploy"), ("lab01/uptime-kuma", "redeploy")}
    assert [(h.subject.id, h.state) for h in explanation.hosted] == [
        ("lab01/code-server", "missing (node offline)"),
        ("lab01/uptime-kuma", "unknown (node offline)")]


def test_blocked_service_names_the_dependency_and_its_state() -> None:
    explanation = explained(HOMELAB, "edge01/home-assistant")
    states = {d.subject.id: d.state for d in explanation.dependencies}
    assert states["edge01/zigbee2mqtt"] == "missing (node online)"


def test_dependency_lists_the_services_waiting_on_it() -> None:
    explanation = explained(HOMELAB, "edge01/zigbee2mqtt")
    waiting = {d.subject.id: [r.action for r in d.recommendations] for d in explanation.dependents}
    assert waiting["edge01/home-assistant"] == ["delayed_deployment"]


def test_desired_vs_actual_marks_differences() -> None:
    rows = {row[0]: row for row in explained(HOMELAB, "media01/sonarr").comparison}
    assert rows["status"] == ("status", "ok", "failed", True)
    assert rows["present"] == ("present", True, True, False)


def test_resolution(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  web: {}\n  db: {}\n", "n2": "services:\n  web: {}\n"},
                    services={"n1/web": ok(), "n2/web": ok(), "n1/db": ok()})
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world"))
    assert resolve(loaded.state, "db").id == "n1/db"
    assert resolve(loaded.state, "n2/web").id == "n2/web"
    assert resolve(loaded.state, "n2").kind == "node"
    assert resolve(loaded.state, "world").kind == "world"
    with pytest.raises(InputError, match="'web' is ambiguous: n1/web, n2/web"):
        resolve(loaded.state, "web")
    with pytest.raises(InputError, match=r"no subject 'n1/dbb'.*did you mean n1/db"):
        resolve(loaded.state, "n1/dbb")


def test_cli_json_context_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    result = runner.invoke(app, ["explain", "sonarr", str(HOMELAB), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document)[:4] == ["subject", "recommendations", "trace", "context"]
    evaluated = json.loads(runner.invoke(app, ["eval", str(HOMELAB), "--format", "json"]).stdout)
    assert document["recommendations"] == [
        r for r in evaluated["recommendations"] if r["subject"]["id"] == "media01/sonarr"]
    assert document["trace"][0]["rule"] == "deployment-failures-repeated"
    assert document["context"]["service"]["actual"]["status"] == "failed"

    context = runner.invoke(app, ["explain", "sonarr", str(HOMELAB), "--context"])
    assert json.loads(context.stdout)["subject"] == {"kind": "service", "id": "media01/sonarr"}

    table = runner.invoke(app, ["explain", "sonarr", str(HOMELAB)])
    assert "├─ fired          service-unhealthy  -> reconcile_required redeploy" in table.stdout
    assert "service.actual.status != 'ok' -> 'failed' != 'ok' -> true" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 100

    unknown = runner.invoke(app, ["explain", "sonar", str(HOMELAB)])
    assert unknown.exit_code == 2
    assert "no subject 'sonar'" in unknown.stderr


def test_kind_prefixes_tell_colliding_names_apart(scenario: ScenarioFactory) -> None:
    root = scenario({"world": "services:\n  web: {}\n", "web": "services:\n  db: {}\n"},
                    services={"world/web": ok(), "web/db": ok()})
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world"))
    with pytest.raises(InputError, match="'world' is ambiguous"):
        resolve(loaded.state, "world")
    assert resolve(loaded.state, "world:") == resolve(loaded.state, "world:world")
    assert resolve(loaded.state, "world:").kind == "world"
    assert resolve(loaded.state, "node:world").kind == "node"
    assert resolve(loaded.state, "service:world/web").id == "world/web"
    with pytest.raises(InputError, match="'web' is ambiguous: web \\(node\\), world/web"):
        resolve(loaded.state, "web")
    assert resolve(loaded.state, "node:web").kind == "node"


def test_explain_shows_what_a_rule_declares_beyond_its_recommendation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    stale = [str(FIXTURES / "stale-world"), "--now", "2026-11-26T10:20:00Z"]
    table = runner.invoke(app, ["explain", "world", *stale]).stdout
    assert "    makes the summary at least unstable; while it holds, run resolves nothing\n" in table
    offline = runner.invoke(app, ["explain", "lab01", str(HOMELAB)]).stdout
    assert "    makes the summary at least unstable\n" in offline
    document = json.loads(runner.invoke(app, ["explain", "world", *stale, "--format", "json"]).stdout)
    assert (document["trace"][0]["summary"], document["trace"][0]["freezes_resolution"]) == (
        "unstable", True)
