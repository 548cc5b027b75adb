"""`supervisor test`, in process."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from support.scenarios import FIXTURES
from typer.testing import CliRunner

from supervisor.cli import app


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    for name in ("missing-service", "unmanaged-service", "bad-wrong-type"):
        shutil.copytree(FIXTURES / name, tmp_path / "suite" / name)
    return tmp_path / "suite"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["test", *args], env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout + result.stderr


def test_passing_suite(suite: Path) -> None:
    code, output = invoke(str(suite))
    assert code == 0
    assert output.splitlines() == [
        "ok   bad-wrong-type", "ok   missing-service", "ok   unmanaged-service",
        "3 passed, 0 failed"]


def test_a_failing_scenario_shows_the_difference_and_exits_1(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text(expect.read_text().replace("summary: degraded", "summary: unstable"))
    code, output = invoke(str(suite))
    assert code == 1
    assert "FAIL missing-service\n       summary degraded, wanted unstable\n" in output
    assert output.endswith("2 passed, 1 failed\n")


def test_a_vacuous_expectation_is_an_error(suite: Path) -> None:
    expect = suite / "unmanaged-service" / "expect.yaml"
    expect.write_text(expect.read_text() + "must_not:\n- {subject: nowhere/ghost}\n")
    code, output = invoke(str(suite))
    assert code == 2
    assert "ERROR unmanaged-service" in output
    assert "must_not[0]: no subject 'nowhere/ghost' in this scenario" in output


def test_coverage_and_minimum(suite: Path) -> None:
    code, output = invoke(str(suite / "missing-service"), "--coverage")
    assert code == 0
    assert "rule coverage: 8% (1 of 12 rules fired)" in output
    assert "never fired: node-offline (" in output
    code, _ = invoke(str(suite / "missing-service"), "--min-coverage", "50")
    assert code == 1


def test_project_fixtures_cover_every_default_rule() -> None:
    code, output = invoke(str(FIXTURES), "--min-coverage", "100")
    assert code == 0, output


def test_junit(suite: Path, tmp_path: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text(expect.read_text().replace("summary: degraded", "summary: nominal"))
    invoke(str(suite), "--junit", str(tmp_path / "junit.xml"))
    root = ET.parse(tmp_path / "junit.xml").getroot()
    assert root.get("tests") == "3" and root.get("failures") == "1"
    failed = [case.get("name") for case in root.iter("testcase") if case.find("failure") is not None]
    assert failed == ["missing-service"]


def test_update_accepts_the_current_result(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text("summary: nominal\n")
    code, output = invoke(str(suite), "--update")
    assert code == 0
    assert "-summary: nominal\n+summary: degraded\n" in output
    assert yaml.safe_load(expect.read_text())["must"] == [
        ["service", "app01/miniflux", "missing_service", "reconcile_required", "redeploy"]]
    # A second update changes nothing.
    code, output = invoke(str(suite), "--update")
    assert "+summary" not in output


def test_no_scenarios(tmp_path: Path) -> None:
    code, output = invoke(str(tmp_path))
    assert code == 2
    assert "holds no scenarios" in output


def test_layered_rules_apply_to_every_scenario(suite: Path, tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "quiet.yaml").write_text(
        "rules:\n- id: service-unmanaged\n  override: true\n  enabled: false\n"
        "  condition: unmanaged_service\n  match: \"`true`\"\n"
        "  event: reconcile_recommended\n  action: review_unmanaged\n")
    code, output = invoke(str(suite / "unmanaged-service"), "--rules", str(tmp_path / "rules"))
    assert code == 1
    assert "missing   [service, " in output
