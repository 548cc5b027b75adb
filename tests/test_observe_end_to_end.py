"""From containers in known states on a real engine, through `observe docker --once`, to
exactly the recommendations `eval` should make: missing, unhealthy, failed, a one-shot service
that finished (quiet) and one that failed, and an unmanaged container."""

from __future__ import annotations

import json
from pathlib import Path

from support.dockerd import Dockerd
from typer.testing import CliRunner

from supervisor.cli import app

INVENTORY = """\
services:
  web: {}
  api: {}
  worker: {}
  wiki: {}
  migrate:
    one_shot: true
  backup:
    one_shot: true
"""


def test_known_states_give_exactly_the_expected_recommendations(dockerd: Dockerd,
                                                                 tmp_path: Path) -> None:
    (tmp_path / "hosts" / "nas01").mkdir(parents=True)
    (tmp_path / "hosts" / "nas01" / "services.yaml").write_text(INVENTORY)
    dockerd.run("web", "sleep", "600", healthcheck=["true"])
    dockerd.run("api", "sleep", "600", healthcheck=["false"])
    dockerd.run("worker", "sh", "-c", "exit 3")
    dockerd.run("migrate", "true")
    dockerd.run("backup", "sh", "-c", "exit 1")
    dockerd.run("scratch", "sleep", "600")  # started by hand, declared nowhere
    dockerd.wait_state("web", "running", health="healthy")
    dockerd.wait_state("api", "running", health="unhealthy")
    for name in ("worker", "migrate", "backup"):
        dockerd.wait_state(name, "exited")

    runner = CliRunner()
    observed = runner.invoke(app, ["observe", "docker", "--node", f"nas01={dockerd.host}",
                                   "--world", str(tmp_path / "world"), "--once"])
    assert observed.exit_code == 0, observed.output
    result = runner.invoke(app, ["eval", "--inventory", str(tmp_path / "hosts"),
                                 "--world", str(tmp_path / "world"), "--format", "json"])
    assert result.exit_code == 0, result.output
    evaluation = json.loads(result.stdout)
    assert evaluation["summary"] == "degraded"
    assert [(r["subject"]["id"], r["condition"], r["event"], r["action"], r["reason"])
            for r in evaluation["recommendations"]] == [
        ("nas01/api", "unhealthy_service", "reconcile_required", "redeploy",
         "nas01/api reports status degraded"),
        ("nas01/backup", "unhealthy_service", "reconcile_required", "redeploy",
         "nas01/backup reports status failed"),
        ("nas01/scratch", "unmanaged_service", "reconcile_recommended", "review_unmanaged",
         "nas01/scratch runs but is declared nowhere"),
        ("nas01/wiki", "missing_service", "reconcile_required", "redeploy",
         "nas01/wiki is declared but not running"),
        ("nas01/worker", "unhealthy_service", "reconcile_required", "redeploy",
         "nas01/worker reports status failed"),
    ]
