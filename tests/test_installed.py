"""End to end: the installed command, in a real subprocess, from another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.scenarios import FIXTURES


def command() -> list[str]:
    installed = Path(sys.executable).parent / "supervisor"
    if installed.exists():
        return [str(installed)]
    found = shutil.which("supervisor")
    return [found] if found else [sys.executable, "-m", "supervisor"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    for name in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES"):
        env.pop(name, None)
    return subprocess.run([*command(), *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60, check=False)


def test_eval_from_another_directory_uses_the_packaged_rules(tmp_path: Path) -> None:
    result = run("eval", str(FIXTURES / "homelab"), "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["summary"] == "unstable"


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "supervisor", "--version"], capture_output=True,
                            text=True, cwd=tmp_path, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("supervisor ")


def test_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    result = run("eval", str(FIXTURES / "bad-invalid-json"), cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert ".json:" in result.stderr


def test_fail_on_sets_the_exit_code(tmp_path: Path) -> None:
    result = run("eval", str(FIXTURES / "homelab"), "--fail-on", "unstable", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("UNSTABLE")
