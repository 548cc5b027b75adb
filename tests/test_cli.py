from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, ok
from typer.testing import CliRunner

from supervisor import __version__
from supervisor.cli import app

HOMELAB = FIXTURES / "homelab"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return CliRunner()


def test_version(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"supervisor {__version__}\n"


def test_eval_json_matches_the_contract(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert list(document) == ["summary", "evaluated_at", "recommendations"]
    assert document["summary"] == "unstable"
    assert document["evaluated_at"] == "2026-11-26T10:00:00Z"
    first = document["recommendations"][0]
    assert list(first) == ["subject", "condition", "event", "action", "severity", "rule",
                           "reason", "fingerprint"]
    ids = [r["subject"]["id"] for r in document["recommendations"]]
    assert ids == sorted(ids)


def test_eval_output_is_byte_identical_across_runs(cli: CliRunner) -> None:
    outputs = {cli.invoke(app, ["eval", str(HOMELAB), "--format", "json"]).stdout
               for _ in range(3)}
    assert len(outputs) == 1


def test_eval_table_groups_by_subject_with_summary_on_top(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "UNSTABLE  7 recommendations, evaluated at 2026-11-26T10:00:00Z"
    assert "lab01  node" in lines
    assert "\033[" not in result.stdout  # NO_COLOR, and not a terminal


def test_table_for_a_nominal_world(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(FIXTURES / "nominal-anchors")])
    assert result.stdout.splitlines() == [
        "NOMINAL  0 recommendations, evaluated at 2026-11-26T10:00:00Z",
        "Inventory and world agree: nothing to reconcile.",
    ]


@pytest.mark.parametrize(("fail_on", "code"), [("degraded", 1), ("unstable", 1), (None, 0)])
def test_fail_on(cli: CliRunner, fail_on: str | None, code: int) -> None:
    args = ["eval", str(HOMELAB)] + (["--fail-on", fail_on] if fail_on else [])
    assert cli.invoke(app, args).exit_code == code


def test_fail_on_below_threshold(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(FIXTURES / "missing-service"), "--fail-on", "unstable"])
    assert result.exit_code == 0


def test_inventory_and_world_options_and_environment(cli: CliRunner) -> None:
    explicit = cli.invoke(app, ["eval", "--inventory", str(HOMELAB / "hosts"),
                                "--world", str(HOMELAB / "world"), "--format", "json"])
    from_env = cli.invoke(app, ["eval", "--format", "json"], env={
        "SUPERVISOR_INVENTORY": str(HOMELAB / "hosts"), "SUPERVISOR_WORLD": str(HOMELAB / "world")})
    positional = cli.invoke(app, ["eval", str(HOMELAB), "--format", "json"])
    assert explicit.exit_code == 0
    assert explicit.stdout == from_env.stdout == positional.stdout


def test_now_option_and_stale_world(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB), "--now", "2026-11-26T11:00:00Z",
                              "--format", "json"])
    document = json.loads(result.stdout)
    assert [r["condition"] for r in document["recommendations"]] == ["stale_world"]
    relaxed = cli.invoke(app, ["eval", str(HOMELAB), "--now", "2026-11-26T11:00:00Z",
                               "--max-age", "7200", "--format", "json"])
    assert len(json.loads(relaxed.stdout)["recommendations"]) > 1


def test_naive_now_is_bad_usage(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB), "--now", "2026-11-26T11:00:00"])
    assert result.exit_code == 2
    assert "--now: '2026-11-26T11:00:00' is not an RFC 3339 timestamp with a zone" in result.stderr


@pytest.mark.parametrize(("now", "message"), [
    ("2026-11-26T11:00:00+24:00", ("--now: '2026-11-26T11:00:00+24:00': a UTC offset must be "
                                  "less than 24 hours\n")),
    ("2026-13-26T11:00:00Z", ("--now: '2026-13-26T11:00:00Z' is not a valid date and time "
                             "(month must be in 1..12)\n")),
])
def test_an_impossible_now_is_said_in_our_words(cli: CliRunner, now: str, message: str) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB), "--now", now])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert "timedelta" not in result.stderr


def test_rules_layer_and_no_default_rules(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n- id: pinned-image\n  condition: unhealthy_service\n"
        "  match: \"service.desired.image != `null` && !contains(service.desired.image, ':')\"\n"
        "  event: reconcile_recommended\n  action: pin_image\n")
    only_mine = cli.invoke(app, ["eval", str(HOMELAB), "--no-default-rules", "--rules",
                                 str(tmp_path), "--format", "json"])
    assert only_mine.exit_code == 0, only_mine.stderr
    assert {r["rule"] for r in json.loads(only_mine.stdout)["recommendations"]} <= {"pinned-image"}
    layered = cli.invoke(app, ["eval", str(HOMELAB), "--rules", str(tmp_path), "--format", "json"])
    assert len(json.loads(layered.stdout)["recommendations"]) >= 7


def test_bad_input_reports_every_problem_and_exits_2(cli: CliRunner,
                                                     scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services:\n  web:\n    depend_on: [db]\n    critical: 'yes'\n"},
                    services={"n1/web": {"status": "broken"}})
    result = cli.invoke(app, ["eval", str(root)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        (f"{root}/hosts/n1/services.yaml:3:5: services.web.depend_on: unknown key 'depend_on' "
        "(did you mean 'depends_on'?)"),
        (f"{root}/hosts/n1/services.yaml:4:15: services.web.critical: expected boolean, "
        'got string "yes"'),
        (f"{root}/world/services/n1/web.json:1:12: status: string \"broken\" is not one of: "
        "ok, degraded, failed, stopped, starting, unknown"),
        "supervisor: 3 problems found",
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_scenario_directory(cli: CliRunner, tmp_path: Path) -> None:
    result = cli.invoke(app, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{tmp_path / 'nope'}: scenario directory does not exist")


def test_default_world_path_missing(cli: CliRunner, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli.invoke(app, ["eval", "--world", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "hosts: inventory directory does not exist" in result.stderr
    assert f"{tmp_path / 'w'}: world snapshot does not exist" in result.stderr


def test_unknown_option_is_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["eval", "--colour"])
    assert result.exit_code == 2


def test_validate_ok_and_bad(cli: CliRunner, scenario: ScenarioFactory) -> None:
    good = cli.invoke(app, ["validate", str(HOMELAB)])
    assert good.exit_code == 0
    assert good.stdout.startswith("valid: 5 nodes and 27 services declared")
    root = scenario({"n1": "services:\n  web: {depends_on: [db]}\n"}, services={"n1/web": ok()})
    bad = cli.invoke(app, ["validate", str(root)])
    assert bad.exit_code == 2
    assert "depends on n1/db, which no node declares" in bad.stderr


def test_validate_catches_a_matcher_that_fails_on_real_data(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n- id: typed\n  condition: unhealthy_service\n"
        "  match: \"starts_with(service.actual.version, '1')\"\n"
        "  event: reconcile_recommended\n  action: upgrade\n")
    result = cli.invoke(app, ["validate", str(FIXTURES / "missing-service"), "--rules", str(tmp_path)])
    assert result.exit_code == 2
    assert "rule 'typed': failed on service app01/miniflux" in result.stderr


def test_bad_rule_file_names_file_and_rule(cli: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "rules:\n- id: nope\n  condition: unhealthy_service\n  match: \"a ==\"\n"
        "  event: reconcile_sometime\n  action: x\n")
    result = cli.invoke(app, ["eval", str(HOMELAB), "--rules", str(tmp_path)])
    assert result.exit_code == 2
    assert f"{tmp_path}/rules.yaml:5:10: rules[0].event: rule 'nope': " in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-5"])
def test_max_age_must_be_a_real_number_of_seconds(cli: CliRunner, value: str) -> None:
    result = cli.invoke(app, ["eval", str(HOMELAB), "--max-age", value])
    assert result.exit_code == 2
    assert "--max-age: must be a number of seconds, 0 or more" in result.stderr


# What `supervisor --help` must not pay for: each is imported inside the command that needs it.
HEAVY_MODULES = ("yaml", "jsonschema", "jsonschema_rs", "jmespath", "docker", "requests", "apprise",
                 "watchfiles", "orjson")


def test_help_imports_no_heavy_module() -> None:
    # A fresh interpreter: this test process has long since imported everything.
    code = ("import json, sys\nfrom supervisor.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps([sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules),\n"
            "                  'supervisor.commands.run' in sys.modules]), file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    heavy, registered = json.loads(result.stderr)
    assert heavy == []
    assert registered  # the commands were registered, so their modules' imports were counted
    assert "eval" in result.stdout and "remediate" in result.stdout
