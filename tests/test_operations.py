"""Operators' integration: Prometheus metrics, --watch, quiet output, completion."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.scenarios import FIXTURES
from typer.testing import CliRunner

from supervisor.cli import app


def series(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_metrics_after_a_degraded_and_a_nominal_eval(tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    code, _, _ = invoke("eval", str(FIXTURES / "missing-service"), "--metrics-file", str(metrics),
                        "--now", "2026-11-26T10:02:00Z")
    assert code == 0
    found = series(metrics)
    assert found[("supervisor_summary_state", (("state", "degraded"),))] == 1
    assert found[("supervisor_summary_state", (("state", "nominal"),))] == 0
    assert found[("supervisor_recommendations", (("action", "redeploy"),
                  ("condition", "missing_service"), ("event", "reconcile_required")))] == 1
    assert found[("supervisor_world_age_seconds", ())] == 120
    assert found[("supervisor_input_problems", ())] == 0
    assert abs(found[("supervisor_last_run_timestamp_seconds", ())] - time.time()) < 60
    assert found[("supervisor_last_run_duration_seconds", ())] >= 0

    invoke("eval", str(FIXTURES / "nominal-anchors"), "--metrics-file", str(metrics))
    found = series(metrics)
    assert found[("supervisor_summary_state", (("state", "nominal"),))] == 1
    assert not [key for key in found if key[0] == "supervisor_recommendations"]


def test_a_series_per_open_recommendation_names_the_subject(tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    code, _, _ = invoke("eval", str(FIXTURES / "homelab"), "--metrics-file", str(metrics))
    assert code == 0
    each = {dict(labels)["subject"]: dict(labels) for (name, labels), value in
            series(metrics).items() if name == "supervisor_recommendation" and value == 1}
    assert len(each) == 7
    assert each["media01/sonarr"] == {
        "subject": "media01/sonarr", "kind": "service", "node": "media01",
        "condition": "unhealthy_service", "action": "redeploy", "event": "reconcile_required",
        "severity": "warning", "rule": "service-unhealthy"}
    assert each["lab01"]["node"] == "lab01" and each["lab01"]["kind"] == "node"


def test_run_writes_the_series_from_its_checkpoint_too(tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    args = ["run", str(FIXTURES / "homelab"), "--now", "2026-11-26T10:01:00Z", "-q",
            "--events", str(tmp_path / "events.log"), "--checkpoint", str(tmp_path / "cp.json"),
            "--metrics-file", str(metrics)]
    code, _, _ = invoke(*args)
    first = {k: v for k, v in series(metrics).items() if k[0] == "supervisor_recommendation"}
    assert code == 0 and len(first) == 7
    code, _, _ = invoke(*args)  # skipped: from the checkpoint
    assert {k: v for k, v in series(metrics).items()
            if k[0] == "supervisor_recommendation"} == first


def test_the_metrics_file_is_readable_by_node_exporter_whatever_the_umask(
        tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    script = ("import os, sys; os.umask(0o077); from supervisor.cli import main; "
              "main(sys.argv[1:])")
    for command in (["eval", str(FIXTURES / "homelab"), "-q"],
                    ["run", str(FIXTURES / "homelab"), "-q", "--events",
                     str(tmp_path / "events.log"), "--checkpoint", str(tmp_path / "cp.json")],
                    ["eval", str(FIXTURES / "bad-invalid-json"), "-q"]):
        metrics.unlink(missing_ok=True)
        subprocess.run([sys.executable, "-c", script, *command, "--metrics-file",
                        str(metrics)], check=False, capture_output=True)
        assert metrics.stat().st_mode & 0o777 == 0o644, command
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".supervisor.prom")]


def test_bad_input_still_writes_metrics(tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    code, _, _ = invoke("eval", str(FIXTURES / "bad-invalid-json"), "--metrics-file",
                        str(metrics))
    assert code == 2
    found = series(metrics)
    assert found[("supervisor_input_problems", ())] == 1
    assert not [key for key in found if key[0] == "supervisor_summary_state"]


def test_run_writes_metrics_from_its_open_recommendations(tmp_path: Path) -> None:
    metrics = tmp_path / "supervisor.prom"
    args = ["run", str(FIXTURES / "homelab"), "--now", "2026-11-26T10:01:00Z", "-q",
            "--events", str(tmp_path / "events.log"), "--checkpoint", str(tmp_path / "cp.json"),
            "--metrics-file", str(metrics)]
    for _ in range(2):  # the second run is skipped: the metrics come from the checkpoint
        code, out, _ = invoke(*args)
        assert code == 0 and out == ""
        found = series(metrics)
        assert found[("supervisor_summary_state", (("state", "unstable"),))] == 1
        assert sum(v for k, v in found.items() if k[0] == "supervisor_recommendations") == 7
        assert found[("supervisor_world_age_seconds", ())] == 60


def test_quiet_eval_prints_nothing_and_keeps_the_exit_code() -> None:
    code, out, _ = invoke("eval", str(FIXTURES / "homelab"), "-q", "--fail-on", "degraded")
    assert (code, out) == (1, "")


def test_help_names_every_environment_variable() -> None:
    _, run_help, _ = invoke("run", "--help")
    for variable in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES",
                     "SUPERVISOR_EVENTS", "SUPERVISOR_CHECKPOINT", "SUPERVISOR_INSTANCE"):
        assert variable in run_help


def test_shell_completion_is_offered() -> None:
    _, out, _ = invoke("--help")
    assert "--install-completion" in out and "--show-completion" in out


def command() -> list[str]:
    installed = Path(sys.executable).parent / "supervisor"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "supervisor"]


def wait_for_lines(stream_path: Path, count: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = stream_path.read_text().splitlines() if stream_path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    return stream_path.read_text().splitlines() if stream_path.exists() else []


@pytest.mark.slow
def test_watch_runs_once_per_burst_of_changes(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(FIXTURES / "homelab", lab)
    out = tmp_path / "stdout.txt"
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [*command(), "run", str(lab), "--watch", "--interval", "60", "--now",
             "2026-11-26T10:01:00Z", "--events", str(tmp_path / "events.log"),
             "--checkpoint", str(tmp_path / "cp.json")],
            stdout=stdout, stderr=subprocess.PIPE, text=True)
    try:
        assert len(wait_for_lines(out, 1, 30)) == 1
        time.sleep(1)
        # The observer rewrites every service file, and one goes down.
        for record in sorted((lab / "world" / "services").glob("*/*.json")):
            data = json.loads(record.read_text())
            data["status"] = "failed" if record.stem == "postgres" else data["status"]
            record.write_text(json.dumps(data))
        lines = wait_for_lines(out, 2, 30)
        time.sleep(5)  # long enough for a second run, were the burst split in two
        lines = out.read_text().splitlines()
        assert len(lines) == 2, lines
        assert "1 reconcile_required" in lines[1]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


