"""`observe docker` against a real engine (tests/support/dockerd.py): each container state the
observer must tell apart, Compose projects, containers removed between observations, and the
endpoint going away."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.dockerd import Dockerd, wait_restarting
from typer.testing import CliRunner

from supervisor.cli import app

runner = CliRunner()


def observe(engine: Dockerd, world: Path, *extra: str, node: str = "nas01") -> Any:
    return runner.invoke(app, ["observe", "docker", "--node", f"{node}={engine.host}",
                               "--world", str(world), "--once", *extra])


def services(world: Path, node: str = "nas01") -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text())
            for path in sorted((world / "services" / node).glob("*.json"))}


def observe_while_restarting(engine: Dockerd, world: Path, name: str) -> Any:
    """An observation made while the crash-looping `name` sat in its restart back-off the whole
    time: on a loaded machine an observation could outlast the back-off and see one of its brief
    runs, so such an observation is made again (the back-off doubles each time)."""
    for _ in range(5):
        wait_restarting(engine, name)
        count = engine.client.api.inspect_container(name)["RestartCount"]
        result = observe(engine, world)
        after = engine.client.api.inspect_container(name)
        if after["RestartCount"] == count and after["State"]["Restarting"]:
            return result
    pytest.fail(f"container {name} restarted during each of 5 observations")


def test_each_container_state_becomes_a_status(dockerd: Dockerd, tmp_path: Path) -> None:
    dockerd.run("running", "sleep", "600")
    dockerd.run("healthy", "sleep", "600", healthcheck=["true"])
    dockerd.run("unhealthy", "sleep", "600", healthcheck=["false"])
    dockerd.run("crashing", "sh", "-c", "exit 1", restart="always")
    dockerd.run("done", "true")
    dockerd.run("broken", "sh", "-c", "exit 3")
    dockerd.client.containers.create(dockerd.image, ["sleep", "600"], name="created",
                                     network_mode="none")
    dockerd.wait_state("healthy", "running", health="healthy")
    dockerd.wait_state("unhealthy", "running", health="unhealthy")
    dockerd.wait_state("done", "exited")
    dockerd.wait_state("broken", "exited")
    result = observe_while_restarting(dockerd, tmp_path / "world", "crashing")
    assert result.exit_code == 0, result.output
    found = services(tmp_path / "world")
    assert {name: (r["status"], r["health"], r["exit_code"]) for name, r in found.items()} == {
        "running": ("ok", "none", 0),
        "healthy": ("ok", "healthy", 0),
        "unhealthy": ("degraded", "unhealthy", 0),
        "crashing": ("failed", "none", 1),
        "done": ("stopped", "none", 0),
        "broken": ("failed", "none", 3),
        "created": ("starting", "none", 0),
    }
    assert found["crashing"]["restarts"] >= 5
    assert found["running"]["image"] == dockerd.image
    assert found["running"]["version"] == "1"
    assert found["running"]["container_id"] == dockerd.client.containers.get("running").id
    node = json.loads((tmp_path / "world" / "nodes" / "nas01.json").read_text())
    world = json.loads((tmp_path / "world" / "world.json").read_text())
    assert node["status"] == "online"
    assert node["last_seen"] == world["observed_at"]


COMPOSE = """\
services:
  web:
    image: busybox-offline:1
    command: sleep 600
    network_mode: none
  db:
    image: busybox-offline:1
    command: sleep 600
    network_mode: none
    labels:
      homelab.service: photos-db
"""


def test_compose_services_scaled_and_labelled(dockerd: Dockerd, tmp_path: Path) -> None:
    project = tmp_path / "photos"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE)
    dockerd.compose(project, "-p", "photos", "up", "-d", "--scale", "web=2")
    result = observe(dockerd, tmp_path / "world")
    assert result.exit_code == 0, result.output
    found = services(tmp_path / "world")
    assert sorted(found) == ["photos-db", "web"]
    assert found["web"]["replicas"] == 2
    assert found["web"]["status"] == "ok"
    assert found["web"]["compose_project"] == "photos"
    assert found["web"]["container_name"] in ("photos_web_1", "photos_web_2")
    assert found["photos-db"]["compose_project"] == "photos"


def test_a_container_removed_between_observations_loses_its_record(
        dockerd: Dockerd, tmp_path: Path) -> None:
    dockerd.run("keep", "sleep", "600")
    dockerd.run("gone", "sleep", "600")
    assert observe(dockerd, tmp_path / "world").exit_code == 0
    assert sorted(services(tmp_path / "world")) == ["gone", "keep"]
    dockerd.client.containers.get("gone").remove(force=True)
    result = observe(dockerd, tmp_path / "world")
    assert result.exit_code == 0, result.output
    assert sorted(services(tmp_path / "world")) == ["keep"]
    assert "1 removed" in result.output


def test_the_endpoint_going_away_makes_the_node_offline_and_keeps_its_records(
        tmp_path: Path) -> None:
    """An engine of its own, stopped mid-test: the session's engine must stay up."""
    import tempfile

    from support.dockerd import start_dockerd, stop_dockerd

    root = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    engine = start_dockerd(root)
    try:
        engine.run("web", "sleep", "600")
        first = observe(engine, tmp_path / "world")
        assert first.exit_code == 0, first.output
        before = json.loads((tmp_path / "world" / "nodes" / "nas01.json").read_text())
        record = (tmp_path / "world" / "services" / "nas01" / "web.json").read_text()
    finally:
        stop_dockerd(engine)
    second = observe(engine, tmp_path / "world")
    assert second.exit_code == 2
    assert f"node nas01 ({engine.host}): no socket at {engine.socket}" in second.output
    after = json.loads((tmp_path / "world" / "nodes" / "nas01.json").read_text())
    assert after == {"status": "offline", "last_seen": before["last_seen"]}
    assert (tmp_path / "world" / "services" / "nas01" / "web.json").read_text() == record
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def test_without_node_the_engine_at_docker_host_is_this_host(
        dockerd: Dockerd, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", dockerd.host)
    monkeypatch.setattr("socket.gethostname", lambda: "NAS01")
    dockerd.run("web", "sleep", "600")
    result = runner.invoke(app, ["observe", "docker", "--world", str(tmp_path / "world")])
    assert result.exit_code == 0, result.output
    assert services(tmp_path / "world")["web"]["status"] == "ok"
