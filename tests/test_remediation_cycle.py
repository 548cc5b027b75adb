"""`supervisor remediate`, one pass at a time: planning, guardrails, acting, verifying.

The executor here is the real `command` executor running /usr/bin/touch, so that an action
leaves a file behind: a test sees exactly what was done, and what was not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import write_scenario

from supervisor.engine import evaluate
from supervisor.errors import SupervisorError
from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs, load
from supervisor.remediation.cycle import PassReport, Setup, remediate_once
from supervisor.remediation.holds import place
from supervisor.remediation.policy import load_policies
from supervisor.timestamps import parse_time
from supervisor.transitions import Paths, default_instance, run_once

WEB = "services:\n  web: {labels: {tier: app}}\n  api: {labels: {tier: app}}\n"
DEPENDENT = ("services:\n  db: {labels: {tier: app}}\n"
             "  app: {labels: {tier: app}, depends_on: [db]}\n")


class Lab:
    """A scenario, its event log, and `run` and `remediate` over it at chosen times."""

    def __init__(self, root: Path, hosts: str = WEB, policy: str = "", **world: Any) -> None:
        self.root = root
        self.marks = root / "marks"
        self.marks.mkdir(parents=True)
        self.hosts = {"nas01": hosts}
        self.world(**world)
        self.paths = Paths(events=root / "events.log", checkpoint=root / "checkpoint.json")
        self.holds = root / "holds.json"
        self.history = root / "remediations.json"
        (root / "policy").mkdir()
        (root / "policy" / "main.yaml").write_text(policy or self.policy())

    def policy(self, limits: str = "{per_run: 5, per_hour: 20, per_subject: 5, cooldown: 60, "
               "verify_within: 120}", extra: str = "") -> str:
        return (f"limits: {limits}\n{extra}policies:\n"
                "  - id: touch-apps\n"
                "    match: \"recommendation.action == 'redeploy' && "
                "service.desired.labels.tier == 'app'\"\n"
                "    executor: command\n"
                f"    args: {{argv: [/usr/bin/touch, '{self.marks}/{{{{ service.name }}}}']}}\n")

    def world(self, observed_at: str = "2026-11-26T10:00:00Z", **world: Any) -> None:
        services = world.pop("services", {"nas01/web": {"status": "stopped"},
                                          "nas01/api": {"status": "ok"}})
        write_scenario(self.root / "scenario", self.hosts, services=services,
                       observed_at=observed_at,
                       nodes={"nas01": {"status": "online", "last_seen": observed_at}}, **world)
        # Records of services the new world no longer has must go.
        for path in (self.root / "scenario" / "world" / "services" / "nas01").glob("*.json"):
            if f"nas01/{path.stem}" not in services:
                path.unlink()

    def inputs(self, now: str) -> Inputs:
        scenario = self.root / "scenario"
        return Inputs(inventory=scenario / "hosts", world=scenario / "world", now=now,
                      remediations=self.history)

    def run(self, now: str) -> None:
        run_once(self.inputs(now), self.paths)

    def remediate(self, now: str, *, execute: bool = True) -> PassReport:
        setup = Setup(inputs=self.inputs(now), events=self.paths.events, holds=self.holds,
                      remediations=self.history, policies=load_policies([self.root / "policy"]),
                      instance=default_instance(self.inputs(now).inventory, self.paths.checkpoint),
                      execute=execute)
        return remediate_once(setup)

    def lines(self, *types: str) -> list[dict[str, Any]]:
        found = EventLog(self.paths.events).read()
        return [line for line in found if not types or line["type"] in types]

    def touched(self) -> list[str]:
        return sorted(path.name for path in self.marks.iterdir())

    def skipped(self) -> list[str]:
        return [line["guardrail"] for line in self.lines("remediation_skipped")]


@pytest.fixture
def lab(tmp_path: Path) -> Lab:
    return Lab(tmp_path / "lab")


T0, T1, T2, T5 = ("2026-11-26T10:01:00Z", "2026-11-26T10:01:30Z", "2026-11-26T10:02:00Z",
                  "2026-11-26T10:05:00Z")


def test_dry_run_plans_and_changes_nothing(lab: Lab) -> None:
    lab.run(T0)
    report = lab.remediate(T0, execute=False)
    assert lab.touched() == []
    (planned,) = lab.lines("remediation_planned")
    assert planned["subject"] == {"kind": "service", "id": "nas01/web"}
    assert planned["args"] == {"argv": ["/usr/bin/touch", f"{lab.marks}/web"]}
    assert planned["policy"] == "touch-apps" and planned["rule"] == "service-unhealthy"
    assert "would act on nas01/web (touch-apps)" in report.text()
    lab.remediate(T1, execute=False)  # the same plan again: printed, not logged again
    assert len(lab.lines("remediation_planned")) == 1
    assert lab.lines("remediation_started") == []


def test_execute_logs_before_and_after_then_verifies_success(lab: Lab) -> None:
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == ["web"]
    started, executed = lab.lines("remediation_started", "remediation_executed")
    assert started["attempt"] == executed["attempt"]
    assert started["verify_by"] == "2026-11-26T10:03:00Z"
    assert lab.lines().index(started) < lab.lines().index(executed)
    history = json.loads(lab.history.read_text())["subjects"]["nas01/web"]
    assert [record["status"] for record in history] == ["running"]

    lab.world(observed_at=T2, services={"nas01/web": {"status": "ok"},
                                        "nas01/api": {"status": "ok"}})
    lab.remediate(T2)  # run has not resolved it yet: no verdict
    assert lab.lines("remediation_succeeded") == []
    lab.run(T2)
    lab.remediate(T2)
    (succeeded,) = lab.lines("remediation_succeeded")
    assert succeeded["attempt"] == started["attempt"]
    history = json.loads(lab.history.read_text())["subjects"]["nas01/web"]
    assert [record["status"] for record in history] == ["succeeded"]


def test_unresolved_within_verify_within_fails(lab: Lab) -> None:
    lab.run(T0)
    lab.remediate(T0)
    lab.world(observed_at=T2)
    lab.run(T2)
    lab.remediate(T2)
    assert lab.lines("remediation_failed") == []  # verify_within (120 s) not over yet
    lab.world(observed_at="2026-11-26T10:03:00Z")
    lab.run("2026-11-26T10:03:00Z")
    lab.remediate("2026-11-26T10:03:00Z")
    (failed,) = lab.lines("remediation_failed")
    assert "still holds after verify_within" in failed["reason"]


def test_a_failing_executor_fails_the_attempt_and_says_why(tmp_path: Path) -> None:
    policy = ("policies:\n  - id: fail\n    match: \"recommendation.action == 'redeploy'\"\n"
              "    executor: command\n    args: {argv: [/bin/false]}\n")
    lab = Lab(tmp_path / "lab", policy=policy)
    lab.run(T0)
    lab.remediate(T0)
    (failed,) = lab.lines("remediation_failed")
    assert failed["reason"] == "/bin/false exited with status 1"


def test_no_policy_no_remediation(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", policy="policies: []\n")
    lab.run(T0)
    report = lab.remediate(T0)
    assert lab.touched() == [] and lab.lines("remediation_planned", "remediation_started") == []
    assert "nothing to do" in report.text()


def test_a_blocked_recommendation_is_never_acted_on(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", hosts=DEPENDENT,
              services={"nas01/db": {"status": "failed"}, "nas01/app": {"status": "failed"}})
    lab.run(T0)
    lab.remediate(T0)
    # db gets its redeploy; app, waiting on db, is blocked (delayed_deployment) and left alone.
    assert lab.touched() == ["db"]


def test_a_recommendation_run_has_not_logged_is_not_acted_on(lab: Lab) -> None:
    report = lab.remediate(T0)  # nobody was told: run has not written it to the log
    assert lab.touched() == []
    # Said, since the usual cause is a log or instance other than run's (another --checkpoint).
    instance = default_instance(lab.inputs(T0).inventory, lab.paths.checkpoint)
    assert report.text().endswith(
        f"remediate {report.run_id}: 1 recommendation holds, but none is open in "
        f"{lab.paths.events} for instance {instance}: remediation acts only on what run has "
        "logged (give it run's --events, and run's --instance or --inventory and "
        "--checkpoint)\n")
    lab.run(T0)
    assert "none is open" not in lab.remediate(T0).text()


def test_a_stale_world_stops_everything(lab: Lab) -> None:
    lab.run(T0)
    lab.remediate(T0)
    stale = "2026-11-26T11:00:00Z"
    lab.run(stale)
    report = lab.remediate(stale)
    assert report.untrusted is not None and report.untrusted.startswith("stale_world")
    assert lab.skipped() == ["untrusted_world"]
    # Not even verification: past verify_within, but nothing derived from the world holds.
    assert lab.lines("remediation_failed", "remediation_succeeded") == []
    lab.remediate("2026-11-26T11:00:30Z")
    assert lab.skipped() == ["untrusted_world"]  # once per world, not once per pass


def test_bad_input_stops_everything(lab: Lab) -> None:
    lab.run(T0)
    (lab.root / "scenario" / "hosts" / "nas01" / "services.yaml").write_text("services: [\n")
    with pytest.raises(SupervisorError):
        lab.remediate(T0)
    assert lab.touched() == []
    assert lab.skipped() == ["untrusted_world"]


def test_hold_then_release(lab: Lab) -> None:
    lab.run(T0)
    place(lab.holds, "nas01", parse_time(T0), reason="disk swap", by="alice")
    lab.remediate(T0)
    assert lab.touched() == []
    (skipped,) = lab.lines("remediation_skipped")
    assert skipped["guardrail"] == "hold"
    assert skipped["reason"] == "held by alice since 2026-11-26T10:01:00Z: disk swap"
    lab.holds.unlink()
    lab.remediate(T1)
    assert lab.touched() == ["web"]


def test_a_lapsed_hold_holds_nothing(lab: Lab) -> None:
    lab.run(T0)
    place(lab.holds, "nas01/web", parse_time(T0), until=T1, by="alice")
    lab.remediate(T0)
    assert lab.touched() == []
    lab.remediate(T1)
    assert lab.touched() == ["web"]


@pytest.mark.parametrize("window", [
    # Thursday 26 November 2026, 11:01 in Berlin: inside 11:00-12:00 local, not UTC.
    "{id: weekly, weekly: {days: [thu], start: '11:00', end: '12:00', timezone: Europe/Berlin}}",
    "{id: one-off, from: '2026-11-26T10:00:00Z', until: '2026-11-26T10:01:30Z'}",
    "{id: overnight, weekly: {days: [wed], start: '22:00', end: '12:00', timezone: Europe/Berlin}}",
])
def test_maintenance_window(lab: Lab, window: str) -> None:
    (lab.root / "policy" / "main.yaml").write_text(
        lab.policy(extra=f"maintenance:\n  - {window}\n"))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == []
    assert lab.skipped() == ["maintenance"]


def test_maintenance_window_outside_its_hours(lab: Lab) -> None:
    window = ("{id: weekly, weekly: {days: [thu], start: '10:00', end: '11:00', "
              "timezone: Europe/Berlin}, mark: true}")  # 10:01 UTC is 11:01 in Berlin: outside
    (lab.root / "policy" / "main.yaml").write_text(
        lab.policy(extra=f"maintenance:\n  - {window}\n"))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == ["web"]


def test_a_marking_window_marks_the_skipped_line(lab: Lab) -> None:
    window = "{id: patching, from: '2026-11-26T10:00:00Z', until: '2026-11-26T10:03:00Z', mark: true}"
    (lab.root / "policy" / "main.yaml").write_text(
        lab.policy(extra=f"maintenance:\n  - {window}\n"))
    lab.run(T0)
    lab.remediate(T0)
    (skipped,) = lab.lines("remediation_skipped")
    assert skipped["maintenance"] == "patching"
    # Evaluation marks the covered recommendations too: in eval's output, and on the lines run
    # writes for recommendations that open during the window (what notifications read).
    loaded = load(lab.inputs(T1))
    (marked,) = evaluate(loaded.state, loaded.rules).recommendations
    assert marked.to_json()["maintenance"] == "patching"
    lab.world(observed_at=T1, services={"nas01/web": {"status": "stopped"},
                                        "nas01/api": {"status": "failed"}})
    lab.run(T1)
    (opened,) = [line for line in lab.lines("reconcile_required")
                 if line["subject"]["id"] == "nas01/api"]
    assert opened["maintenance"] == "patching"
    closed = load(lab.inputs("2026-11-26T10:03:30Z"))  # the window has closed
    after = evaluate(closed.state, closed.rules).recommendations
    assert [r.subject.id for r in after] == ["nas01/api", "nas01/web"]
    assert all("maintenance" not in r.to_json() for r in after)


def test_in_flight_then_cooldown_then_subject_rate(lab: Lab) -> None:
    (lab.root / "policy" / "main.yaml").write_text(lab.policy(
        limits="{per_subject: 2, subject_window: 3600, cooldown: 600, verify_within: 60, "
        "per_hour: 20, per_run: 5}"))
    lab.run(T0)
    lab.remediate(T0)
    lab.remediate(T1)
    assert lab.skipped() == ["in_flight"]
    lab.world(observed_at=T2)
    lab.run(T2)
    lab.remediate(T2)  # verify_within (60 s) is over: failed; then the cooldown holds
    assert [line["type"] for line in lab.lines("remediation_failed")] == ["remediation_failed"]
    assert lab.skipped() == ["in_flight", "cooldown"]
    later = "2026-11-26T10:12:00Z"
    lab.world(observed_at=later)
    lab.run(later)
    lab.remediate(later)  # cooldown over: the second action
    assert len(lab.lines("remediation_started")) == 2
    for even_later in ("2026-11-26T10:25:00Z", "2026-11-26T10:36:00Z"):
        lab.world(observed_at=even_later)
        lab.run(even_later)
        lab.remediate(even_later)  # failed at 10:25, cooling down, then the rate holds
    assert len(lab.lines("remediation_started")) == 2
    assert lab.skipped()[-2:] == ["cooldown", "subject_rate"]


def test_per_run_and_hourly_rates(tmp_path: Path) -> None:
    services = {"nas01/web": {"status": "stopped"}, "nas01/api": {"status": "stopped"}}
    lab = Lab(tmp_path / "lab", services=services)
    (lab.root / "policy" / "main.yaml").write_text(lab.policy(
        limits="{per_run: 1, per_hour: 2, per_subject: 5, cooldown: 1, verify_within: 30}"))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == ["api"]  # subjects in order; one action per pass
    assert lab.skipped() == ["run_rate"]
    lab.remediate(T2)
    assert lab.touched() == ["api", "web"]
    lab.remediate(T5)  # api's attempt failed; another would be the third in the hour
    assert len(lab.lines("remediation_started")) == 2
    assert "hourly_rate" in lab.skipped()


def test_dependents_wait_for_the_remediation_of_their_dependency(tmp_path: Path) -> None:
    # db is up but has an open incident, which a policy remediates; app is down. db comes
    # first (app depends on it, though it sorts after), and app waits for db's verification.
    incident = {"id": "inc-1", "subject": "nas01/db", "status": "open", "severity": "warning",
                "opened_at": "2026-11-26T09:50:00Z", "title": "slow queries"}
    lab = Lab(tmp_path / "lab", hosts=DEPENDENT, incidents=[incident],
              services={"nas01/db": {"status": "ok"}, "nas01/app": {"status": "failed"}})
    (lab.root / "policy" / "main.yaml").write_text(lab.policy().replace(
        "recommendation.action == 'redeploy' && ", ""))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == ["db"]
    (skipped,) = lab.lines("remediation_skipped")
    assert skipped["guardrail"] == "root_cause"
    assert skipped["reason"] == "nas01/db, which nas01/app depends on, is still being remediated"


def test_an_interrupted_attempt_is_visible_and_not_repeated(lab: Lab) -> None:
    lab.run(T0)
    lab.remediate(T0)
    # As if the process had been killed between logging the start and logging the end.
    log = lab.paths.events
    kept = [line for line in log.read_text().splitlines()
            if json.loads(line)["type"] != "remediation_executed"]
    log.write_text("\n".join(kept) + "\n")
    (lab.marks / "web").unlink()
    lab.remediate(T1)
    (interrupted,) = lab.lines("remediation_interrupted")
    assert interrupted["attempt"] == lab.lines("remediation_started")[0]["attempt"]
    assert lab.touched() == []  # not repeated
    assert lab.skipped() == ["in_flight"]
    lab.remediate(T1)
    assert len(lab.lines("remediation_interrupted")) == 1


def test_repeated_failures_escalate_and_then_remediation_stops(tmp_path: Path) -> None:
    policy = ("limits: {per_subject: 10, per_hour: 10, cooldown: 1, verify_within: 60}\n"
              "policies:\n  - id: fail\n    match: \"recommendation.action == 'redeploy'\"\n"
              "    executor: command\n    args: {argv: [/bin/true]}\n")
    lab = Lab(tmp_path / "lab", policy=policy)
    for minute in range(1, 9):
        now = f"2026-11-26T10:{minute:02d}:00Z"
        lab.world(observed_at=now)
        lab.run(now)
        lab.remediate(now)
    assert len(lab.lines("remediation_started")) == 3
    assert len(lab.lines("remediation_failed")) == 3
    blocked = [line for line in lab.lines("reconcile_blocked")]
    assert [line["condition"] for line in blocked] == ["failed_remediation"]
    assert blocked[0]["action"] == "diagnostics"


def test_never_on_a_subject_whose_recommendation_is_overruled(tmp_path: Path) -> None:
    # web failed to deploy three times: diagnostics (blocked) overrules its redeploy. Its open
    # incident would match the policy, but the root cause comes first.
    deployments = [{"id": f"d{n}", "service": "nas01/web", "status": "failed",
                    "started_at": f"2026-11-26T09:{n}0:00Z",
                    "finished_at": f"2026-11-26T09:{n}5:00Z"} for n in (1, 2, 3)]
    incident = {"id": "inc-9", "subject": "nas01/web", "status": "open", "severity": "warning",
                "opened_at": "2026-11-26T09:50:00Z", "title": "502s"}
    lab = Lab(tmp_path / "lab", deployments=deployments, incidents=[incident])
    (lab.root / "policy" / "main.yaml").write_text(lab.policy().replace(
        "recommendation.action == 'redeploy' && ", ""))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == []
    (skipped,) = lab.lines("remediation_skipped")
    assert (skipped["guardrail"], skipped["action"]) == ("root_cause", "review_incident")
    assert skipped["reason"] == ("redeploy (failed_deployment) on nas01/web is overruled by "
                                 "diagnostics (failed_deployment) on nas01/web: the root cause "
                                 "comes first")


def test_arguments_that_cannot_be_filled_in_hold_the_action_back(tmp_path: Path) -> None:
    policy = ("policies:\n  - id: by-container\n    match: \"recommendation.action == 'redeploy'\"\n"
              "    executor: command\n"
              "    args: {argv: [/usr/bin/touch, '{{ service.actual.container_name }}']}\n")
    lab = Lab(tmp_path / "lab", policy=policy)
    lab.run(T0)
    lab.remediate(T0)
    (skipped,) = lab.lines("remediation_skipped")
    assert skipped["guardrail"] == "bad_arguments"
    assert "a placeholder is null" in skipped["reason"]
    assert lab.lines("remediation_started") == []


def test_a_window_whose_match_cannot_be_read_holds_the_action_back(lab: Lab) -> None:
    # length(null) is a type error on a node without the label: while the window is open, not
    # knowing whether it covers the subject must not let an action through (nor crash the pass).
    window = ("{id: rack-a, from: '2026-11-26T10:00:00Z', until: '2026-11-26T10:03:00Z', "
              "match: 'length(node.desired.labels.rack) > `0`'}")
    (lab.root / "policy" / "main.yaml").write_text(
        lab.policy(extra=f"maintenance:\n  - {window}\n"))
    lab.run(T0)
    lab.remediate(T0)
    assert lab.touched() == []
    (skipped,) = lab.lines("remediation_skipped")
    assert skipped["guardrail"] == "maintenance"
    assert skipped["reason"] == (
        "maintenance window 'rack-a' is open, and whether it covers nas01/web is unknown: "
        "its match failed: In function length(), invalid type for value: None, expected one "
        "of: ['string', 'array', 'object'], received: \"null\"")
    lab.remediate(T5)  # closed: the action goes ahead
    assert lab.touched() == ["web"]
