"""What ships with the package: default rules, schemas and systemd units."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.resources import data_dir

UNITS = ["homelab-supervisor.service", "homelab-supervisor-once.service",
         "homelab-supervisor-once.timer", "homelab-supervisor-remediate.service"]


def test_data_directories_are_present() -> None:
    assert (data_dir("rules") / "default.yaml").is_file()
    for name in ("inventory", "world", "rules", "expect", "checkpoint", "policy", "holds",
                 "remediations"):
        assert (data_dir("schemas") / f"{name}.schema.json").is_file()
    for unit in UNITS:
        assert (data_dir("systemd") / unit).is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_units_verify(tmp_path: Path) -> None:
    installed = Path(sys.executable).parent / "supervisor"
    for unit in UNITS:
        text = (data_dir("systemd") / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/supervisor", str(installed)))
    result = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / u) for u in UNITS)],
                            capture_output=True, text=True, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""  # unknown keys only warn: there must be none
