"""The alerting rules of docs/operations.md, run by `promtool test rules` over the series that
`--metrics-file` writes."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support import need
from support.scenarios import FIXTURES, ROOT
from typer.testing import CliRunner

from supervisor.cli import app


def alert_rules() -> str:
    text = (ROOT / "docs" / "operations.md").read_text()
    found = re.search(r"```yaml\n(groups:.*?)```", text, re.DOTALL)
    assert found is not None
    return found.group(1)


def written_series(tmp_path: Path, scenario: str) -> list[tuple[str, dict[str, str], float]]:
    metrics = tmp_path / "supervisor.prom"
    result = CliRunner().invoke(app, ["eval", str(FIXTURES / scenario), "-q",
                                      "--metrics-file", str(metrics)])
    assert result.exit_code in (0, 2)
    return [(sample.name, sample.labels, sample.value)
            for family in text_string_to_metric_families(metrics.read_text())
            for sample in family.samples]


def selector(name: str, labels: dict[str, str]) -> str:
    inside = ",".join(f"{key}={json.dumps(value)}" for key, value in sorted(labels.items()))
    return f"{name}{{{inside}}}"


def test_the_documented_alerts_fire_on_the_series_we_write(tmp_path: Path) -> None:
    promtool = need("promtool", "prometheus")
    series = written_series(tmp_path, "homelab")
    inputs = []
    for name, labels, value in series:
        # The last run's time moves on a minute a run (never silent); the rest holds still.
        silent = name == "supervisor_last_run_timestamp_seconds"
        values = "0+60x20" if silent else f"{value:g}x20"
        inputs.append({"series": selector(name, labels), "values": values})
    recommendations = [labels for name, labels, _ in series
                       if name == "supervisor_recommendation"]
    assert len(recommendations) == 7
    expected = [{
        "exp_labels": labels,
        "exp_annotations": {
            "summary": f"{labels['subject']}: {labels['action']} ({labels['condition']})",
            "description": f"Run `supervisor explain {labels['subject']}` to see why."},
    } for labels in recommendations]
    silent = [{"series": "supervisor_last_run_timestamp_seconds", "values": "0x20"}]
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": inputs, "alert_rule_test": [
                {"eval_time": "4m", "alertname": "HomelabRecommendation", "exp_alerts": []},
                {"eval_time": "6m", "alertname": "HomelabRecommendation",
                 "exp_alerts": expected},
                {"eval_time": "6m", "alertname": "HomelabUnstable", "exp_alerts": [
                    {"exp_labels": {"state": "unstable"}, "exp_annotations": {
                        "summary": "The homelab is unstable: run `supervisor eval` to see why"}}]},
                {"eval_time": "15m", "alertname": "HomelabSupervisorSilent", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "HomelabSupervisorInputBroken",
                 "exp_alerts": []},
            ]},
            {"interval": "1m", "input_series": silent, "alert_rule_test": [
                {"eval_time": "9m", "alertname": "HomelabSupervisorSilent", "exp_alerts": []},
                {"eval_time": "11m", "alertname": "HomelabSupervisorSilent", "exp_alerts": [
                    {"exp_labels": {}, "exp_annotations": {
                        "summary": "The supervisor has not run for 10 minutes"}}]},
            ]},
            {"interval": "1m", "input_series": [
                {"series": selector(name, labels), "values": f"{value:g}x20"}
                for name, labels, value in written_series(tmp_path, "bad-invalid-json")
                if name == "supervisor_input_problems"], "alert_rule_test": [
                {"eval_time": "11m", "alertname": "HomelabSupervisorInputBroken",
                 "exp_alerts": [{"exp_labels": {}, "exp_annotations": {
                     "summary": "The supervisor cannot read its inputs: see "
                     "`journalctl -u homelab-supervisor`"}}]},
            ]},
        ],
    }
    (tmp_path / "rules.yml").write_text(alert_rules())
    (tmp_path / "tests.yml").write_text(json.dumps(tests, indent=1))
    result = subprocess.run([promtool, "test", "rules", "tests.yml"], cwd=tmp_path,
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
