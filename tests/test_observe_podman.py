"""`observe docker` against Podman's Docker-compatible socket: the same code, unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from support.podman import running_podman
from typer.testing import CliRunner

from supervisor.cli import app


def test_podman_socket_is_observed_like_docker(tmp_path: Path) -> None:
    with running_podman() as podman:
        podman.run("web", "sleep", "600", labels={"com.docker.compose.service": "web",
                                                  "com.docker.compose.project": "photos"})
        podman.run("job", "true")
        podman.run("broken", "sh", "-c", "exit 2")
        for name in ("job", "broken"):
            podman.wait_state(name, "exited")
        podman.wait_state("web", "running")
        result = CliRunner().invoke(app, ["observe", "docker", "--node", f"nas01={podman.host}",
                                          "--world", str(tmp_path), "--once"])
    assert result.exit_code == 0, result.output
    found = {path.stem: json.loads(path.read_text())
             for path in (tmp_path / "services" / "nas01").glob("*.json")}
    assert {name: (r["status"], r["exit_code"]) for name, r in found.items()} == {
        "web": ("ok", 0), "job": ("stopped", 0), "broken": ("failed", 2)}
    assert found["web"]["compose_project"] == "photos"
    assert found["web"]["image"].endswith("busybox-offline:1")
    node = json.loads((tmp_path / "nodes" / "nas01.json").read_text())
    assert node["status"] == "online"
    assert node["engine"].startswith("Podman Engine ")
