from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.scenarios import ScenarioFactory, evaluate_dir, keys, ok

from supervisor.engine import DISABLED, FIRED, NO_MATCH, OVERRULED, evaluate, fingerprint, reached
from supervisor.errors import RuleError
from supervisor.inputs import Inputs, load
from supervisor.model import Subject

TWO_NODES = {"n1": "services:\n  app: {depends_on: [n2/db]}\n", "n2": "services:\n  db: {}\n"}


def deployment(index: int, status: str, hour: int, service: str = "n1/app") -> dict[str, str]:
    return {"id": f"d{index}", "service": service, "status": status,
            "started_at": f"2026-11-26T{hour:02d}:00:00Z",
            "finished_at": f"2026-11-26T{hour:02d}:05:00Z"}


def test_offline_node_overrules_redeploys_of_its_services(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, nodes={
        "n1": {"status": "online", "last_seen": "2026-11-26T09:59:00Z"},
        "n2": {"status": "offline", "last_seen": "2026-11-26T09:00:00Z"}},
        services={"n1/app": {"status": "failed"}})
    assert keys(evaluate_dir(root)) == {
        ("node", "n2", "offline_node", "reconcile_required", "failover_review"),
        ("service", "n1/app", "dependency_unavailable", "reconcile_blocked", "delayed_deployment"),
    }


def test_silent_node_is_offline_after_the_heartbeat(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services: {}\n"},
                    nodes={"n1": {"status": "online", "last_seen": "2026-11-26T09:54:59Z"}})
    assert keys(evaluate_dir(root)) == {
        ("node", "n1", "offline_node", "reconcile_required", "failover_review")}
    assert keys(evaluate_dir(root, now="2026-11-26T09:59:59Z")) == set()


def test_unavailable_dependency_overrules_redeploy(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}})
    assert keys(evaluate_dir(root)) == {
        ("service", "n2/db", "missing_service", "reconcile_required", "redeploy"),
        ("service", "n1/app", "dependency_unavailable", "reconcile_blocked", "delayed_deployment"),
    }


def test_a_healthy_dependent_is_not_blocked(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, services={"n1/app": ok()})
    assert keys(evaluate_dir(root)) == {
        ("service", "n2/db", "missing_service", "reconcile_required", "redeploy")}


def test_repeated_failures_overrule_every_redeploy(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": {"status": "failed"}},
                    deployments=[deployment(i, "failed", 6 + i) for i in range(3)])
    evaluation = evaluate_dir(root, )
    assert keys(evaluation) == {
        ("service", "n1/app", "failed_deployment", "reconcile_blocked", "diagnostics")}
    assert evaluation.summary == "unstable"


def test_one_or_two_failures_ask_for_a_redeploy(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()},
                    deployments=[deployment(0, "succeeded", 5), deployment(1, "failed", 6),
                                 deployment(2, "failed", 7)])
    evaluation = evaluate_dir(root)
    assert keys(evaluation) == {
        ("service", "n1/app", "failed_deployment", "reconcile_required", "redeploy")}
    assert evaluation.summary == "degraded"
    assert evaluation.recommendations[0].reason == (
        "n1/app: 2 failed deployments since the last success")


def test_thresholds_come_from_the_rules(scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()},
                    deployments=[deployment(1, "failed", 6), deployment(2, "failed", 7)])
    tuned = tmp_path / "tuned"
    tuned.mkdir()
    (tuned / "params.yaml").write_text("params: {deployment_failures_to_block: 2}\nrules: []\n")
    assert keys(evaluate_dir(root, rules=(tuned,))) == {
        ("service", "n1/app", "failed_deployment", "reconcile_blocked", "diagnostics")}


def test_stale_world_is_the_only_recommendation(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}})
    evaluation = evaluate_dir(root, now="2026-11-26T10:10:01Z")
    assert keys(evaluation) == {("world", "world", "stale_world", "reconcile_blocked",
                                 "check_observer")}
    assert evaluation.summary == "unstable"
    assert keys(evaluate_dir(root, now="2026-11-26T10:10:00Z")) != keys(evaluation)
    assert len(keys(evaluate_dir(root, now="2026-11-26T10:10:01Z", max_age=3600))) == 2


def test_incidents_attach_to_their_subject(scenario: ScenarioFactory) -> None:
    incident = {"subject": "n1/app", "severity": "critical", "opened_at": "2026-11-26T09:00:00Z"}
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()}, incidents=[
        {**incident, "id": "i1", "status": "open"},
        {**incident, "id": "i2", "status": "acknowledged"},
        {**incident, "id": "i3", "status": "resolved"},
        {**incident, "id": "i4", "status": "open", "subject": "n1"},
    ])
    evaluation = evaluate_dir(root)
    assert keys(evaluation) == {
        ("node", "n1", "unresolved_incident", "reconcile_recommended", "review_incident"),
        ("service", "n1/app", "unresolved_incident", "reconcile_recommended", "review_incident"),
    }
    assert evaluation.recommendations[1].reason == "n1/app has 2 unresolved incidents: i1, i2"


def test_summary_is_unstable_on_a_critical_service(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {critical: true}\n  web: {}\n"},
                    services={"n1/app": ok(), "n1/web": ok()})
    assert evaluate_dir(root).summary == "nominal"
    (root / "world/services/n1/app.json").write_text(json.dumps({"status": "degraded"}))
    assert evaluate_dir(root).summary == "unstable"
    (root / "world/services/n1/app.json").write_text(json.dumps(ok()))
    (root / "world/services/n1/web.json").write_text(json.dumps({"status": "degraded"}))
    assert evaluate_dir(root).summary == "degraded"


NODE_DOWN = """
conditions: {node_down: a node reports offline}
rules:
  - id: node-down
    subject: node
    condition: node_down
    match: "node.actual.status == 'offline'"
    event: reconcile_required
    action: failover_review
    summary: %s
"""


@pytest.mark.parametrize(("declared", "summary"), [("unstable", "unstable"),
                                                   ("degraded", "degraded")])
def test_the_summary_is_what_the_rule_declares(scenario: ScenarioFactory, tmp_path: Path,
                                               declared: str, summary: str) -> None:
    # A rule standing in for node-offline under another condition name keeps its meaning.
    root = scenario({"n1": "services: {}\n"},
                    nodes={"n1": {"status": "offline", "last_seen": "2026-11-26T09:59:00Z"}})
    rules = tmp_path / "rules.yaml"
    rules.write_text(NODE_DOWN % declared)
    evaluation = evaluate_dir(root, rules=(rules,), default_rules=False)
    assert [r.condition for r in evaluation.recommendations] == ["node_down"]
    assert evaluation.summary == summary


def test_an_undeclared_summary_follows_the_event(scenario: ScenarioFactory, tmp_path: Path) -> None:
    # Named offline_node, but declaring nothing: a reconcile_required brings `degraded`.
    root = scenario({"n1": "services: {}\n"},
                    nodes={"n1": {"status": "offline", "last_seen": "2026-11-26T09:59:00Z"}})
    rules = tmp_path / "rules.yaml"
    rules.write_text((NODE_DOWN % "degraded").replace("node_down", "offline_node")
                     .replace("    summary: degraded\n", ""))
    evaluation = evaluate_dir(root, rules=(rules,), default_rules=False)
    assert [(r.condition, r.summary) for r in evaluation.recommendations] == [
        ("offline_node", "degraded")]
    assert evaluation.summary == "degraded"
    blocked = (NODE_DOWN % "degraded").replace("reconcile_required", "reconcile_blocked")
    rules.write_text(blocked.replace("    summary: degraded\n", ""))
    assert evaluate_dir(root, rules=(rules,), default_rules=False).summary == "unstable"


def test_a_critical_subject_is_unstable_whatever_its_rule_says(
        scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = scenario({"n1": "node: {critical: true}\nservices: {}\n"},
                    nodes={"n1": {"status": "offline", "last_seen": "2026-11-26T09:59:00Z"}})
    rules = tmp_path / "rules.yaml"
    rules.write_text(NODE_DOWN % "degraded")
    evaluation = evaluate_dir(root, rules=(rules,), default_rules=False)
    assert [r.summary for r in evaluation.recommendations] == ["unstable"]
    assert evaluation.summary == "unstable"


def test_an_odd_observer_field_does_not_stop_the_evaluation(
        scenario: ScenarioFactory, tmp_path: Path) -> None:
    # Ordering a string against a number is null, as the specification says: the rule does not
    # match on that service, and every other subject is still evaluated, on both paths.
    root = scenario({"n1": "services:\n  db: {}\n  web: {}\n"},
                    services={"n1/db": {**ok(), "lag_bytes": "6"},
                              "n1/web": {**ok(), "lag_bytes": 9}})
    rules = tmp_path / "lag.yaml"
    rules.write_text("""
rules:
  - id: lagging
    condition: unhealthy_service
    match: "service.actual.lag_bytes > `5`"
    event: reconcile_recommended
    action: look
""")
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world", rules=(rules,)))
    for reference in (False, True):
        evaluation = evaluate(loaded.state, loaded.rules, reference=reference)
        assert [(r.subject.id, r.rule) for r in evaluation.recommendations] == [
            ("n1/web", "lagging")]


def test_reached() -> None:
    assert reached("unstable", "degraded") and reached("degraded", "degraded")
    assert not reached("nominal", "degraded") and not reached("degraded", "unstable")


def test_fingerprint_names_the_rule_and_subject_only() -> None:
    subject = Subject("service", "n1/app")
    assert fingerprint("service-missing", subject) == fingerprint("service-missing", subject)
    assert fingerprint("service-missing", subject) != fingerprint("service-unhealthy", subject)
    assert fingerprint("service-missing", subject) != fingerprint(
        "service-missing", Subject("service", "n1/web"))
    assert len(fingerprint("x", subject)) == 16


def test_a_recommendation_is_named_as_it_always_was(scenario: ScenarioFactory) -> None:
    # The first 16 hex digits of SHA-256 over "rule\x1fkind\x1fid": event logs and remediation
    # histories written by earlier versions name recommendations so.
    assert fingerprint("service-missing", Subject("service", "media01/sonarr")) == "400f940f6a944bf1"
    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}})
    fired = evaluate_dir(root).recommendations
    assert fired
    for found in fired:
        key = f"{found.rule}\x1f{found.subject.kind}\x1f{found.subject.id}".encode()
        assert found.fingerprint == hashlib.sha256(key).hexdigest()[:16]
        assert found.to_json()["fingerprint"] == found.fingerprint


def test_fingerprints_survive_other_changes(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": {"status": "failed"}})
    before = evaluate_dir(root).recommendations[0]
    (root / "world/services/n1/app.json").write_text(json.dumps({"status": "stopped"}))
    after = evaluate_dir(root, now="2026-11-26T10:01:00Z").recommendations[0]
    assert before.reason != after.reason
    assert before.fingerprint == after.fingerprint


def test_recommendations_sort_by_subject_then_rule_order(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  b: {}\n  a: {}\n"}, services={
        "n1/b": {"status": "failed"}, "n1/z": ok()}, incidents=[
        {"id": "i", "subject": "n1/b", "status": "open", "severity": "info",
         "opened_at": "2026-11-26T09:00:00Z"}])
    order = [(r.subject.id, r.rule) for r in evaluate_dir(root).recommendations]
    assert order == [("n1/a", "service-missing"), ("n1/b", "service-unhealthy"),
                     ("n1/b", "service-incident"), ("n1/z", "service-unmanaged")]


def custom_rules(tmp_path: Path, text: str) -> Path:
    directory = tmp_path / "custom"
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    return directory


def test_runtime_matcher_error_names_rule_and_subject(scenario: ScenarioFactory,
                                                      tmp_path: Path) -> None:
    root = scenario({"n1": "services:\n  a: {}\n  b: {}\n"})
    rules = custom_rules(tmp_path, (
        "rules:\n- id: broken\n  condition: missing_service\n"
        "  match: \"length(service.actual) > `0`\"\n"
        "  event: reconcile_required\n  action: redeploy\n"))
    with pytest.raises(RuleError) as caught:
        evaluate_dir(root, rules=(rules,), default_rules=False)
    (message,) = [str(p) for p in caught.value.problems]
    assert message.startswith(
        f"{rules}/rules.yaml:4:10: rules[0].match: rule 'broken': failed on service n1/a: ")
    assert "(and 1 more subjects)" in message


def test_runtime_reason_error_names_the_reason(scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"})
    rules = custom_rules(tmp_path, (
        "rules:\n- id: broken\n  condition: missing_service\n"
        "  match: \"service.actual == `null`\"\n"
        "  event: reconcile_required\n  action: redeploy\n"
        "  reason: \"{{ length(service.actual) }}\"\n"))
    with pytest.raises(RuleError) as caught:
        evaluate_dir(root, rules=(rules,), default_rules=False)
    (message,) = [str(p) for p in caught.value.problems]
    assert message.startswith(
        f"{rules}/rules.yaml:7:11: rules[0].reason: rule 'broken': failed on service n1/a: ")


def test_disabled_rules_do_not_fire(scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"})
    rules = custom_rules(tmp_path, (
        "rules:\n- id: service-missing\n  override: true\n  enabled: false\n"
        "  condition: missing_service\n  match: \"`true`\"\n"
        "  event: reconcile_required\n  action: redeploy\n"))
    assert keys(evaluate_dir(root, rules=(rules,))) == set()


def test_traces_record_every_rule_outcome(scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}})
    rules = custom_rules(tmp_path, (
        "rules:\n- id: service-unmanaged\n  override: true\n  enabled: false\n"
        "  condition: unmanaged_service\n  match: \"`true`\"\n"
        "  event: reconcile_recommended\n  action: review_unmanaged\n"))
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world", rules=(rules,)))
    subject = Subject("service", "n1/app")
    evaluation = evaluate(loaded.state, loaded.rules, trace={subject})
    outcomes = {o.rule: o for o in evaluation.traces[subject]}
    assert list(evaluation.traces) == [subject]
    assert outcomes["dependency-unavailable"].outcome == FIRED
    assert outcomes["service-unhealthy"].outcome == OVERRULED
    assert outcomes["service-unhealthy"].overruled_by is not None
    assert outcomes["service-unhealthy"].overruled_by.rule == "dependency-unavailable"
    assert outcomes["service-missing"].outcome == NO_MATCH
    assert outcomes["service-missing"].value is False
    assert outcomes["service-unmanaged"].outcome == DISABLED
    assert "node-offline" not in outcomes  # a node rule does not apply to a service


def test_evaluation_is_deterministic(scenario: ScenarioFactory) -> None:
    from supervisor.report import to_json

    root = scenario(TWO_NODES, services={"n1/app": {"status": "failed"}, "n2/x": ok()})
    first = to_json(evaluate_dir(root).to_json())
    assert all(to_json(evaluate_dir(root).to_json()) == first for _ in range(3))


def test_a_dependency_on_a_silent_node_is_unavailable(scenario: ScenarioFactory) -> None:
    root = scenario(TWO_NODES, nodes={
        "n1": {"status": "online", "last_seen": "2026-11-26T09:59:00Z"},
        "n2": {"status": "online", "last_seen": "2026-11-26T09:50:00Z"}},
        services={"n1/app": {"status": "failed"}, "n2/db": ok()})
    evaluation = evaluate_dir(root)
    assert keys(evaluation) == {
        ("node", "n2", "offline_node", "reconcile_required", "failover_review"),
        ("service", "n1/app", "dependency_unavailable", "reconcile_blocked", "delayed_deployment"),
    }
    (app,) = [r for r in evaluation.recommendations if r.subject.id == "n1/app"]
    assert app.reason == "n1/app is failed and waits on n2/db"


def test_compiled_matchers_give_byte_identical_output(tmp_path: Path) -> None:
    """Every optimisation of the matchers is held to jmespath's own interpreter."""
    import subprocess
    import sys

    from support.scenarios import FIXTURES, ROOT

    from supervisor.report import to_json

    lab = tmp_path / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab),
                    "--nodes", "30", "--services", "20", "--seed", "3"],
                   check=True, capture_output=True)
    fixtures = sorted(p.parent for p in FIXTURES.glob("*/expect.yaml")
                      if not p.parent.name.startswith("bad-") and (p.parent / "world").is_dir())
    directories = [lab, *fixtures]
    for directory in directories:
        for now in (None, "2026-11-26T10:04:30Z", "2026-11-27T09:00:00Z"):
            loaded = load(Inputs(inventory=directory / "hosts", world=directory / "world",
                                 now=now))
            fast_evaluation = evaluate(loaded.state, loaded.rules)
            slow_evaluation = evaluate(loaded.state, loaded.rules, reference=True)
            fast = to_json(fast_evaluation.to_json())
            slow = to_json(slow_evaluation.to_json())
            assert fast == slow, (directory.name, now)
            # The batch sees the same timestamps: the result holds until the same moment.
            assert fast_evaluation.valid_until == slow_evaluation.valid_until, directory.name


def test_deployments_of_an_undeclared_service_recommend_nothing(scenario: ScenarioFactory) -> None:
    """Redeploying or diagnosing a service no node declares is not the inventory's business;
    if it runs, it is reported as unmanaged instead."""
    root = scenario({"n1": "services:\n  app: {}\n"}, services={"n1/app": ok()},
                    deployments=[deployment(i, "failed", 6 + i, service="n1/ghost")
                                 for i in range(3)])
    assert keys(evaluate_dir(root)) == set()
