"""The walkthrough at the top of docs/observe.md, run exactly as written (the socket aside)
against a real engine: its Compose file, its three commands, and the output it shows."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from support.dockerd import Dockerd
from typer.testing import CliRunner

from supervisor.cli import app

DOC = Path(__file__).resolve().parents[1] / "docs" / "observe.md"
SOCKET = "unix:///var/run/docker.sock"
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def walkthrough() -> tuple[str, str, list[tuple[str, str]]]:
    """The Compose file's path and text, and each command with the output the doc shows."""
    section = DOC.read_text().split("## From Compose folders to recommendations", 1)[1]
    section = section.split("\n## ", 1)[0]
    compose = re.search(r"```yaml\n# (\S+)\n(.*?)```", section, re.DOTALL)
    console = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert compose is not None and console is not None
    steps = [(chunk.split("\n", 1)[0], chunk.split("\n", 1)[1])
             for chunk in console.group(1).split("$ ")[1:]]
    return compose.group(1), compose.group(2), steps


def test_the_walkthrough_has_three_commands() -> None:
    _, _, steps = walkthrough()
    assert [command.split()[:2] for command, _ in steps] == [
        ["supervisor", "import"], ["supervisor", "observe"], ["supervisor", "eval"]]


def test_the_walkthrough_runs_as_written(dockerd: Dockerd, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path, text, steps = walkthrough()
    dockerd.client.images.get(dockerd.image).tag("busybox", "1.36")
    (tmp_path / path).parent.mkdir(parents=True)
    (tmp_path / path).write_text(text)
    dockerd.compose((tmp_path / path).parent, "up", "-d")
    dockerd.wait_state("photos_backup_1", "exited")
    dockerd.wait_state("photos_migrate_1", "exited")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    for command, shown in steps:
        arguments = shlex.split(command.replace(SOCKET, dockerd.host))[1:]
        result = runner.invoke(app, arguments)
        assert result.exit_code == 0, f"{command}\n{result.output}"
        assert TIME.sub("<time>", result.stdout) == TIME.sub("<time>", shown), command
