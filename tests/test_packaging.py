"""What ships with the package: default rules, schemas and systemd units."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from supervisor.resources import data_dir

UNITS = ["homelab-supervisor.service", "homelab-supervisor-once.service",
         "homelab-supervisor-once.timer", "homelab-supervisor-remediate.service",
         "homelab-supervisor-notify.service"]


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


def test_the_notify_unit_has_network_reads_the_log_and_writes_only_its_state() -> None:
    settings: dict[str, list[str]] = {}
    unit = data_dir("systemd") / "homelab-supervisor-notify.service"
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert "PrivateNetwork" not in settings
    assert "AF_INET" in settings["RestrictAddressFamilies"][0].split()
    events = next(v.split("=", 1)[1] for v in settings["Environment"]
                  if v.startswith("SUPERVISOR_EVENTS="))
    state = next(v.split("=", 1)[1] for v in settings["Environment"]
                 if v.startswith("SUPERVISOR_NOTIFY_STATE="))
    assert str(Path(events).parent) in settings["ReadOnlyPaths"]
    assert Path(state).parent == Path("/var/lib") / settings["StateDirectory"][0].split()[0]
    assert settings["ProtectSystem"] == ["strict"]
    # The evaluator's log is 0600: the same user reads it.
    evaluator = (data_dir("systemd") / "homelab-supervisor.service").read_text()
    assert "DynamicUser=yes" in evaluator and settings["User"] == ["homelab-supervisor"]
