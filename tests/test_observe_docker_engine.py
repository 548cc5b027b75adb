"""`observe docker` against a real engine (tests/support/dockerd.py): each container state the
observer must tell apart, Compose projects, containers removed between observations, and the
endpoint going away."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    wait_restarting(dockerd, "crashing")
    result = observe(dockerd, tmp_path / "world")
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
