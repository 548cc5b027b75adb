"""A rule author's workflow from the command line: rule files checked alone, minimal overrides,
and a scenario directory that evaluates and explains as `supervisor test` sees it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.scenarios import FIXTURES
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.rules import default_rules_dir, load_rules

DEFAULTS = sum(rule.enabled for rule in load_rules([default_rules_dir()]).rules)

TYPO = """\
rules:
  - id: service-flapping
    condition: unhealthy_service
    match: "service.actaul.restarts > `5`"
    event: reconcile_recommended
    action: diagnostics
"""


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    for name in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)  # no ./hosts here
    return CliRunner()


def rules_dir(root: Path, text: str, name: str = "my-rules") -> Path:
    (root / name).mkdir(parents=True, exist_ok=True)
    (root / name / "rules.yaml").write_text(text)
    return root / name


def test_rule_files_are_checked_alone(cli: CliRunner, tmp_path: Path) -> None:
    mine = rules_dir(tmp_path, TYPO)
    result = cli.invoke(app, ["validate", "--strict", "--rules", str(mine)])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"{mine}/rules.yaml:4:12: rules[0].match: rule 'service-flapping': service.actaul is "
        "not in the service document (did you mean 'actual'?)")
    assert "hosts" not in result.stderr and "world" not in result.stderr
    fixed = rules_dir(tmp_path, TYPO.replace("actaul", "actual"))
    result = cli.invoke(app, ["validate", "--strict", "--rules", str(fixed)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"valid: {DEFAULTS + 1} rules, checked alone "
                             "(no inventory or world)\n")


def test_rules_only_checks_the_rules_where_an_inventory_exists(
        cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()  # an empty inventory would not validate
    mine = rules_dir(tmp_path, "rules:\n  - {id: service-unmanaged, override: true, "
                     "enabled: false}\n")
    result = cli.invoke(app, ["validate", "--rules-only", "--no-default-rules", "--rules",
                              str(mine)])
    assert result.exit_code == 2
    assert "rule 'service-unmanaged' overrides no earlier rule" in result.stderr
    result = cli.invoke(app, ["validate", "--rules-only", "--rules", str(mine)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"valid: {DEFAULTS - 1} rules, checked alone")


def test_a_minimal_disable_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    quiet = rules_dir(tmp_path, "rules:\n  - id: service-unmanaged\n    override: true\n"
                      "    enabled: false\n")
    result = cli.invoke(app, ["eval", str(FIXTURES / "homelab"), "--rules", str(quiet),
                              "--format", "json"])
    assert result.exit_code == 0, result.stderr
    rules = {r["rule"] for r in json.loads(result.stdout)["recommendations"]}
    assert "service-unmanaged" not in rules and "service-missing" in rules


def test_eval_of_a_scenario_uses_its_world_and_time(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(FIXTURES / "world-single-file"), "--format", "json"])
    assert result.exit_code == 0, result.stderr  # its world is world.json, not world/
    assert len(json.loads(result.stdout)["recommendations"]) == 3
    result = cli.invoke(app, ["eval", str(FIXTURES / "stale-world"), "--format", "json"])
    document = json.loads(result.stdout)
    assert document["evaluated_at"] == "2026-11-26T10:20:00Z"  # expect.yaml's now
    assert [r["rule"] for r in document["recommendations"]] == ["world-stale"]
    result = cli.invoke(app, ["eval", str(FIXTURES / "stale-world"), "--format", "json",
                              "--now", "2026-11-26T10:00:00Z"])
    assert json.loads(result.stdout)["evaluated_at"] == "2026-11-26T10:00:00Z"  # options win


def test_explain_of_a_scenario_uses_its_rules(cli: CliRunner, tmp_path: Path) -> None:
    scenario = tmp_path / "scenario"
    shutil.copytree(FIXTURES / "missing-service", scenario)
    rules_dir(scenario, "rules:\n  - id: service-missing\n    override: true\n"
              "    action: page_someone\n")
    (scenario / "expect.yaml").write_text(
        "rules: [my-rules]\nmust:\n"
        "- [service, app01/miniflux, missing_service, reconcile_required, page_someone]\n")
    assert cli.invoke(app, ["test", str(scenario)]).exit_code == 0
    result = cli.invoke(app, ["explain", "app01/miniflux", str(scenario)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == (
        "  required  page_someone  app01/miniflux is declared but not running")
