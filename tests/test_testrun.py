"""`supervisor test`, in process."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from support.scenarios import FIXTURES, ROOT
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.rules import default_rules_dir, load_rules


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
    assert "rule coverage: 7% (1 of 14 rules fired)" in output
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


QUIET_UNMANAGED = (
    "rules:\n- id: service-unmanaged\n  override: true\n  enabled: false\n"
    "  condition: unmanaged_service\n  match: \"`true`\"\n"
    "  event: reconcile_recommended\n  action: review_unmanaged\n")


def test_a_rule_set_the_scenario_loads_given_again_counts_once(suite: Path) -> None:
    scenario = suite / "missing-service"
    (scenario / "my-rules").mkdir()
    (scenario / "my-rules" / "extra.yaml").write_text(
        "rules:\n- id: service-missing-twice\n  condition: missing_service\n"
        "  match: \"service.actual == `null` && service.desired != `null`\"\n"
        "  event: reconcile_recommended\n  action: look\n")
    expect = scenario / "expect.yaml"
    expect.write_text(expect.read_text() + "rules: [my-rules]\n")
    code, output = invoke(str(scenario), "--rules", str(scenario / "my-rules"))
    assert "already defined" not in output
    assert code == 1 and "unexpected [service, app01/miniflux, missing_service, " \
        "reconcile_recommended, look]" in output  # evaluated, with the rule loaded once


def test_coverage_of_no_rules_is_not_full(suite: Path) -> None:
    code, output = invoke(str(suite / "bad-wrong-type"), "--coverage")
    assert code == 0
    assert "rule coverage: none (no scenario evaluated any rule)" in output
    assert "100%" not in output
    code, _ = invoke(str(suite / "bad-wrong-type"), "--min-coverage", "1")
    assert code == 1


def test_coverage_leaves_out_disabled_rules_and_names_files_briefly(
        suite: Path, tmp_path: Path) -> None:
    (tmp_path / "quiet").mkdir()
    (tmp_path / "quiet" / "quiet.yaml").write_text(QUIET_UNMANAGED)
    code, output = invoke(str(suite / "missing-service"), "--coverage",
                          "--rules", str(tmp_path / "quiet"))
    assert code == 0, output
    enabled = sum(rule.enabled for rule in load_rules([default_rules_dir()]).rules) - 1
    assert f"rule coverage: {100 / enabled:.0f}% (1 of {enabled} rules fired; 1 disabled, " \
        "not counted)" in output
    assert "never fired: service-unmanaged" not in output
    assert "never fired: node-offline (built-in default.yaml)" in output
    assert "site-packages" not in output and str(ROOT) not in output


def test_a_broken_rule_file_is_an_error_not_a_failure(suite: Path, tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "typo.yaml").write_text(
        "rules:\n- id: x\n  condition: missing_service\n  match: \"service.(\"\n"
        "  event: reconcile_required\n  action: redeploy\n")
    code, output = invoke(str(suite), "--rules", str(tmp_path / "broken"))
    assert code == 2
    assert "ERROR missing-service" in output and "ERROR bad-wrong-type" in output
    assert "typo.yaml:4" in output and "FAIL" not in output


def test_a_scenario_whose_own_rules_are_broken_is_an_error(suite: Path) -> None:
    scenario = suite / "missing-service"
    (scenario / "rules").mkdir()
    (scenario / "rules" / "typo.yaml").write_text("rules:\n- id: x\n  serverity: high\n")
    expect = scenario / "expect.yaml"
    expect.write_text(expect.read_text() + "rules: [rules]\n")
    code, output = invoke(str(suite))
    assert code == 2
    assert "ERROR missing-service" in output and "FAIL" not in output


def test_scenarios_of_the_same_name_are_told_apart(tmp_path: Path) -> None:
    for site in ("home", "office"):
        shutil.copytree(FIXTURES / "missing-service", tmp_path / site / "missing-service")
    expect = tmp_path / "office" / "missing-service" / "expect.yaml"
    expect.write_text(expect.read_text().replace("summary: degraded", "summary: nominal"))
    code, output = invoke(str(tmp_path / "home"), str(tmp_path / "office"),
                          "--junit", str(tmp_path / "junit.xml"))
    assert code == 1
    assert "ok   home/missing-service\n" in output
    assert "FAIL office/missing-service\n" in output
    names = [case.get("name") for case in ET.parse(tmp_path / "junit.xml").iter("testcase")]
    assert names == ["home/missing-service", "office/missing-service"]


def test_a_forbidden_recommendation_names_the_must_not_entry(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text(expect.read_text().replace("exact: true\n", "") +
                      "must_not:\n- {subject: app02/linkwarden}\n"
                      "- {subject: app01/miniflux, action: redeploy}\n")
    code, output = invoke(str(suite / "missing-service"))
    assert code == 1
    assert ("forbidden [service, app01/miniflux, missing_service, reconcile_required, redeploy] "
            "(must_not[1]: {subject: app01/miniflux, action: redeploy})") in output


COMMENTED = """\
# Why this scenario exists: a comment that must survive --update.
summary: nominal   # wrong on purpose
exact: true
must:
  - [service, app01/miniflux, missing_service, reconcile_required, diagnostics]
"""


def test_update_leaves_a_passing_file_untouched(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text("# hand-written\nsummary:   degraded\nmust:\n"
                      "  - [service, app01/miniflux, missing_service, reconcile_required, redeploy]\n")
    before = expect.read_bytes()
    code, output = invoke(str(suite / "missing-service"), "--update")
    assert code == 0 and "(after)" not in output
    assert expect.read_bytes() == before


def test_update_keeps_comments_and_the_list_indentation(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    expect.write_text(COMMENTED)
    code, output = invoke(str(suite / "missing-service"), "--update")
    assert code == 0, output
    assert expect.read_text() == COMMENTED.replace("summary: nominal", "summary: degraded") \
        .replace("reconcile_required, diagnostics", "reconcile_required, redeploy")


def test_update_refuses_to_drop_a_comment_inside_the_list(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    text = COMMENTED + "  # a second entry, with a comment above it\n" \
        "  - [service, app01/miniflux, missing_service, reconcile_required, redeploy]\n"
    expect.write_text(text)
    code, output = invoke(str(suite / "missing-service"), "--update")
    assert code == 1
    assert "not updated: a comment inside its 'must' list would be lost" in output
    assert expect.read_text() == text


def test_update_never_expects_what_must_not_forbids(suite: Path) -> None:
    expect = suite / "missing-service" / "expect.yaml"
    text = "summary: nominal\nmust_not:\n- {subject: app01/miniflux, action: redeploy}\n"
    expect.write_text(text)
    code, output = invoke(str(suite / "missing-service"), "--update")
    assert code == 1
    assert "must_not[0] forbids it" in output
    assert expect.read_text() == text


def test_a_scenario_named_twice_runs_once(suite: Path) -> None:
    code, output = invoke(str(suite), str(suite / "missing-service"))
    assert code == 0
    assert output.count("missing-service") == 1
    assert output.endswith("3 passed, 0 failed\n")
