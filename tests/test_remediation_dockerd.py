"""`supervisor remediate` against a real dockerd (tests/support/dockerd.py), through the same
commands an operator types: `observe docker`, `run`, `remediate`, `remediations`, `explain`.

Times: the observer stamps the world with the wall clock; `run` and `remediate` are given
`--now` a little after it, so that verify_within and the cooldown pass without waiting.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.dockerd import Dockerd
from support.scenarios import ROOT
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.timestamps import format_time, parse_time

runner = CliRunner()
LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"  # stops cleanly: status `stopped`


class Homelab:
    """One node, nas01, on the test's dockerd; its inventory, world, policy and state files."""

    def __init__(self, engine: Dockerd, root: Path, services: str, policy: str) -> None:
        self.engine, self.root = engine, root
        (root / "hosts" / "nas01").mkdir(parents=True)
        (root / "hosts" / "nas01" / "services.yaml").write_text(services)
        (root / "policy").mkdir()
        (root / "policy" / "main.yaml").write_text(policy)
        self.files = ["--events", str(root / "events.log"), "--checkpoint",
                      str(root / "checkpoint.json"), "--remediations",
                      str(root / "remediations.json")]
        self.inputs = ["--inventory", str(root / "hosts"), "--world", str(root / "world")]

    def invoke(self, *args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.stdout

    def observe(self) -> datetime:
        """Observes, after the wall clock has moved past `after` to the next second."""
        self.invoke("observe", "docker", "--node", f"nas01={self.engine.host}",
                    "--world", str(self.root / "world"), "--once")
        world = json.loads((self.root / "world" / "world.json").read_text())
        return parse_time(world["observed_at"])

    def run(self, now: datetime) -> str:
        return self.invoke("run", *self.inputs, *self.files, "--once", "--now", format_time(now))

    def remediate(self, now: datetime, *extra: str) -> str:
        return self.invoke("remediate", *self.inputs, *self.files, "--holds",
                           str(self.root / "holds.json"), "--policy", str(self.root / "policy"),
                           "--node", f"nas01={self.engine.host}", "--now", format_time(now),
                           *extra)

    def lines(self, *types: str) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in (self.root / "events.log").read_text().splitlines()]
        return [line for line in found if line["type"] in types]

    def containers(self) -> dict[str, tuple[str, str, str]]:
        """Every container's state, as `docker inspect` tells it."""
        return {c.name: (c.attrs["State"]["Status"], c.attrs["State"]["StartedAt"],
                         c.attrs["State"]["FinishedAt"])
                for c in self.engine.client.containers.list(all=True)}


def next_second(moment: datetime) -> None:
    """Waits until the wall clock is in a later second than `moment`: an observation made then
    is stamped after it."""
    wait_for(lambda: datetime.now(UTC).replace(microsecond=0) > moment, timeout=5,
             what="the next second")


def stopped(engine: Dockerd, name: str) -> None:
    container = engine.run(name, "sh", "-c", LOOP)
    engine.wait_state(name, "running")
    container.stop(timeout=10)
    engine.wait_state(name, "exited")


def walkthrough() -> tuple[str, str]:
    """The inventory and the policy of docs/remediation.md's walkthrough."""
    text = (ROOT / "docs" / "remediation.md").read_text()
    walk = text[text.index("## Walkthrough"):]
    services = re.search(r"```yaml\n# hosts/nas01/services.yaml\n(.*?)```", walk, re.DOTALL)
    policy = re.search(r"```yaml\n# policy/apps.yaml\n(.*?)```", walk, re.DOTALL)
    assert services and policy
    return services.group(1), policy.group(1)


def test_the_walkthrough_a_stopped_container_is_started_and_verified(
        dockerd: Dockerd, tmp_path: Path) -> None:
    services, policy = walkthrough()
    lab = Homelab(dockerd, tmp_path, services, policy)
    stopped(dockerd, "whoami")
    observed = lab.observe()
    lab.run(observed)

    before = lab.containers()
    out = lab.remediate(observed)  # the dry run
    assert ('(dry run): would act on nas01/whoami (start-stopped-apps): docker '
            '{"container":"whoami","operation":"start"}') in out
    assert lab.containers() == before  # nothing in Docker changed
    assert [line["type"] for line in lab.lines("remediation_planned")] == ["remediation_planned"]

    out = lab.remediate(observed, "--execute")
    assert "remediation_executed nas01/whoami" in out
    dockerd.wait_state("whoami", "running")
    assert "reconciling" in lab.run(observed)  # in flight: the summary says so

    next_second(observed)
    later = lab.observe()
    services_seen = json.loads((tmp_path / "world" / "services" / "nas01" / "whoami.json")
                               .read_text())
    assert services_seen["status"] == "ok"  # the observer sees it running
    assert "1 reconcile_resolved" in lab.run(later)  # run resolves the recommendation
    out = lab.remediate(later, "--execute")
    assert "remediation_succeeded nas01/whoami" in out
    assert "nominal" in lab.run(later)  # verified: no longer reconciling
    (started,) = lab.lines("remediation_started")
    (succeeded,) = lab.lines("remediation_succeeded")
    assert succeeded["attempt"] == started["attempt"]
    listing = lab.invoke("remediations", "--events", str(tmp_path / "events.log"))
    assert "nas01/whoami  start-stopped-apps (docker)  succeeded" in listing


CRASHING = """\
limits: {verify_within: 60, cooldown: 1, per_subject: 10, per_hour: 10}
policies:
  - id: start-apps
    match: "recommendation.action == 'redeploy' && service.desired.labels.tier == 'app'"
    executor: docker
"""


def test_a_container_that_crashes_at_once_fails_escalates_and_is_left_alone(
        dockerd: Dockerd, tmp_path: Path) -> None:
    lab = Homelab(dockerd, tmp_path, "services:\n  crashy: {labels: {tier: app}}\n", CRASHING)
    dockerd.run("crashy", "sh", "-c", "exit 1")
    dockerd.wait_state("crashy", "exited")
    for step in range(6):
        observed = lab.observe()
        now = observed + timedelta(seconds=70 * step)  # each step past the last verify_within
        lab.run(now)
        lab.remediate(now, "--execute")  # verifies the last attempt: failed; cooling down
        lab.remediate(now + timedelta(seconds=5), "--execute")  # acts again, if it may
        dockerd.wait_state("crashy", "exited")
    assert len(lab.lines("remediation_started")) == 3
    assert len(lab.lines("remediation_failed")) == 3
    (blocked,) = lab.lines("reconcile_blocked")
    assert (blocked["condition"], blocked["action"]) == ("failed_remediation", "diagnostics")
    explained = runner.invoke(app, ["explain", "nas01/crashy", *lab.inputs, "--remediations",
                                    str(tmp_path / "remediations.json"), "--now",
                                    format_time(now), "--format", "json"])
    assert explained.exit_code == 0, explained.output
    fired = [t for t in json.loads(explained.stdout)["trace"] if t["outcome"] == "fired"]
    assert "remediation-failures-repeated" in [t["rule"] for t in fired]


GUARDED = """\
limits: {{per_run: 1, per_hour: 10, per_subject: 10}}
{maintenance}policies:
  - id: start-apps
    match: "recommendation.action == 'redeploy'"
    executor: docker
    args: {{operation: start}}
"""


@pytest.mark.parametrize("guardrail", ["run_rate", "maintenance", "hold"])
def test_a_guardrail_stops_the_action(dockerd: Dockerd, tmp_path: Path, guardrail: str) -> None:
    window = ("maintenance:\n  - {id: now, from: '2000-01-01T00:00:00Z', "
              "until: '2999-01-01T00:00:00Z'}\n") if guardrail == "maintenance" else ""
    lab = Homelab(dockerd, tmp_path, "services:\n  alpha: {}\n  beta: {}\n",
                  GUARDED.format(maintenance=window))
    stopped(dockerd, "alpha")
    stopped(dockerd, "beta")
    if guardrail == "hold":
        lab.invoke("hold", "nas01/alpha", "--reason", "testing", "--holds",
                   str(tmp_path / "holds.json"))
    observed = lab.observe()
    lab.run(observed)
    before = lab.containers()
    lab.remediate(observed, "--execute")
    after = lab.containers()
    skipped = lab.lines("remediation_skipped")
    assert skipped and {line["guardrail"] for line in skipped} == {guardrail}
    held = {line["subject"]["id"] for line in skipped}
    if guardrail == "maintenance":
        assert held == {"nas01/alpha", "nas01/beta"} and after == before
    else:
        # One of the two held back (the hold's subject; or the second, by the per-pass limit),
        # the other started.
        assert len(held) == 1
        name = held.pop().split("/")[1]
        assert after[name] == before[name]
        other = "beta" if name == "alpha" else "alpha"
        assert after[other][0] == "running"


def test_an_unhealthy_container_is_restarted(dockerd: Dockerd, tmp_path: Path) -> None:
    policy = ("policies:\n  - id: restart-apps\n"
              "    match: \"recommendation.action == 'redeploy'\"\n    executor: docker\n"
              "    args: {stop_timeout: 1}\n")
    lab = Homelab(dockerd, tmp_path, "services:\n  sick: {}\n", policy)
    dockerd.run("sick", "sh", "-c", LOOP, healthcheck=["false"])
    dockerd.wait_state("sick", "running", health="unhealthy")
    observed = lab.observe()
    lab.run(observed)
    started_at = dockerd.state("sick")["StartedAt"]
    out = lab.remediate(observed, "--execute")
    assert "remediation_executed nas01/sick (attempt" in out
    assert "restarted container sick on node nas01" in out
    dockerd.wait_state("sick", "running")
    assert dockerd.state("sick")["StartedAt"] != started_at
