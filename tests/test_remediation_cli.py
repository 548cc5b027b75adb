"""The remediation commands through the CLI: hold, release, holds, remediations, remediate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.scenarios import write_scenario
from typer.testing import CliRunner

from supervisor.cli import DEFAULT_CHECKPOINT, app
from supervisor.resources import data_dir


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_hold_holds_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    holds = tmp_path / "holds.json"
    monkeypatch.setenv("SUPERVISOR_HOLDS", str(holds))
    monkeypatch.setenv("SUDO_USER", "alice")
    code, out, _ = invoke("hold", "nas01/web", "--reason", "disk swap",
                          "--until", "2999-01-01T00:00:00Z")
    assert code == 0
    assert out.startswith("held nas01/web until 2999-01-01T00:00:00Z (by alice (via sudo)")
    entry = json.loads(holds.read_text())["holds"]["nas01/web"]
    assert entry["reason"] == "disk swap" and entry["by"].startswith("alice")
    code, out, _ = invoke("holds")
    assert code == 0 and out.startswith("nas01/web  by alice")
    assert out.rstrip().endswith("until 2999-01-01T00:00:00Z: disk swap")
    code, out, _ = invoke("holds", "--format", "json")
    assert json.loads(out)[0]["subject"] == "nas01/web"
    assert invoke("release", "nas01/web")[:2] == (0, "released nas01/web\n")
    assert invoke("holds")[1] == "no holds\n"
    code, _, err = invoke("release", "nas01/web")
    assert code == 2 and f"{holds}: no hold on 'nas01/web'" in err


@pytest.mark.parametrize(("args", "message"), [
    (("hold", "Not A Subject"), "SUBJECT: 'Not A Subject' is not a node or <node>/<service>"),
    (("hold", "nas01", "--until", "2000-01-01T00:00:00Z"), ("--until: 2000-01-01T00:00:00Z is "
     "not in the future")),
    (("hold", "nas01", "--until", "tomorrow"), "--until: 'tomorrow' is not an RFC 3339"),
])
def test_hold_refuses_bad_input(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, _, err = invoke(*args, "--holds", str(tmp_path / "holds.json"))
    assert code == 2 and message in err, err
    assert not (tmp_path / "holds.json").exists()


def test_a_damaged_holds_file_is_bad_input(tmp_path: Path) -> None:
    holds = tmp_path / "holds.json"
    holds.write_text('{"version": 1, "holds": {"nas01": {"at": "2026-11-26T10:00:00Z"}}}')
    code, _, err = invoke("holds", "--holds", str(holds))
    assert code == 2 and f"{holds}: holds.nas01: missing required key 'by'" in err


def scenario(tmp_path: Path) -> Path:
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n"},
                          services={"nas01/web": {"status": "stopped"}})
    (root / "policy").mkdir()
    (root / "policy" / "p.yaml").write_text(
        "policies:\n  - id: touch\n    match: \"recommendation.action == 'redeploy'\"\n"
        f"    executor: command\n    args: {{argv: [/usr/bin/touch, '{root}/touched']}}\n")
    return root


def remediate(root: Path, *extra: str) -> tuple[int, str, str]:
    return invoke("remediate", str(root), "--now", "2026-11-26T10:01:00Z",
                  "--events", str(root / "events.log"), "--holds", str(root / "holds.json"),
                  "--remediations", str(root / "remediations.json"),
                  "--checkpoint", str(root / "cp.json"), *extra)


def test_remediate_dry_run_then_execute_then_list(tmp_path: Path) -> None:
    root = scenario(tmp_path)
    assert invoke("run", str(root), "--now", "2026-11-26T10:01:00Z", "--events",
                  str(root / "events.log"), "--checkpoint", str(root / "cp.json"))[0] == 0
    code, out, _ = remediate(root, "--policy", str(root / "policy"))
    assert code == 0 and "(dry run): would act on nas01/web (touch): command" in out
    assert not (root / "touched").exists()
    code, out, _ = remediate(root, "--policy", str(root / "policy"), "--execute")
    assert code == 0 and "remediation_executed nas01/web" in out
    assert (root / "touched").exists()
    code, out, _ = invoke("remediations", "--events", str(root / "events.log"))
    assert code == 0
    assert "nas01/web  touch (command)  executed, verify by 2026-11-26T10:06:00Z" in out
    code, out, _ = invoke("remediations", "--events", str(root / "events.log"),
                          "--format", "json")
    (attempt,) = json.loads(out)
    assert attempt["status"] == "running" and attempt["stage"] == "remediation_executed"


def test_remediate_without_a_policy_does_nothing(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario(tmp_path)
    monkeypatch.chdir(tmp_path)  # no ./policy here
    monkeypatch.delenv("SUPERVISOR_POLICY", raising=False)
    invoke("run", str(root), "--now", "2026-11-26T10:01:00Z", "--events",
           str(root / "events.log"), "--checkpoint", str(root / "cp.json"))
    code, out, err = remediate(root, "--execute")
    assert code == 0 and "no policy, so nothing is remediated" in err
    assert "nothing to do" in out and not (root / "touched").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (("--once", "--interval", "5"), "--once: excludes --interval and --watch"),
    (("--interval", "0"), "--interval: must be a positive number of seconds"),
    (("--node", "nas01=/var/run/docker.sock"), "--node nas01=/var/run/docker.sock: endpoint"),
])
def test_remediate_refuses_bad_options(tmp_path: Path, extra: tuple[str, ...],
                                       message: str) -> None:
    root = scenario(tmp_path)
    code, _, err = remediate(root, "--policy", str(root / "policy"), *extra)
    assert code == 2 and message in err, err


def test_remediate_with_a_bad_policy_exits_2_and_acts_on_nothing(tmp_path: Path) -> None:
    root = scenario(tmp_path)
    (root / "policy" / "p.yaml").write_text("policies:\n  - {id: x, match: 'a ==', "
                                           "executor: command, args: {argv: [/bin/true]}}\n")
    code, _, err = remediate(root, "--policy", str(root / "policy"), "--execute")
    assert code == 2 and "p.yaml:2:20: policies[0].match: invalid JMESPath" in err
    assert "Traceback" not in err


def test_eval_is_the_same_with_or_without_a_policy(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario(tmp_path)
    monkeypatch.chdir(root)  # ./policy exists here
    monkeypatch.setenv("SUPERVISOR_POLICY", str(root / "policy"))
    with_policy = invoke("eval", str(root), "--format", "json")
    explained = invoke("explain", "nas01/web", str(root), "--format", "json")
    monkeypatch.delenv("SUPERVISOR_POLICY")
    monkeypatch.chdir(tmp_path)
    assert invoke("eval", str(root), "--format", "json") == with_policy
    assert invoke("explain", "nas01/web", str(root), "--format", "json") == explained


def test_docs_list_every_remediation_event_type_and_guardrail() -> None:
    from support.scenarios import ROOT

    from supervisor.remediation.guardrails import GUARDRAILS
    from supervisor.remediation.history import REMEDIATION_EVENTS

    events = (ROOT / "docs" / "events.md").read_text()
    for kind, meaning in REMEDIATION_EVENTS.items():
        assert f"| `{kind}` | {meaning} |" in events
    remediation = (ROOT / "docs" / "remediation.md").read_text()
    for name, meaning in GUARDRAILS.items():
        assert f"| `{name}` | {meaning} |" in remediation


def test_hold_resolves_a_bare_service_name_through_the_inventory(tmp_path: Path) -> None:
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n  db: {}\n",
                                             "nas02": "services:\n  db: {}\n"})
    holds, hosts = str(tmp_path / "holds.json"), str(root / "hosts")
    code, out, _ = invoke("hold", "web", "--inventory", hosts, "--holds", holds)
    assert code == 0 and out.startswith("held nas01/web until released")
    code, _, err = invoke("hold", "db", "--inventory", hosts, "--holds", holds)
    assert code == 2 and "SUBJECT: 'db' is ambiguous: nas01/db, nas02/db" in err
    code, out, _ = invoke("hold", "nas02", "--inventory", hosts, "--holds", holds)
    assert code == 0 and out.startswith("held nas02 until released")
    assert invoke("release", "web", "--inventory", hosts, "--holds", holds)[:2] == (
        0, "released nas01/web\n")



def test_hold_on_a_subject_the_inventory_does_not_declare_warns(tmp_path: Path) -> None:
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n"})
    holds, hosts = str(tmp_path / "holds.json"), str(root / "hosts")
    for subject, meant in (("nas01/wbe", "nas01/wbe"), ("wbe", "wbe")):
        code, out, err = invoke("hold", subject, "--inventory", hosts, "--holds", holds)
        assert code == 0 and out.startswith(f"held {meant} until released")
        assert err == (f"warning: the inventory ({hosts}) declares no node or service "
                       f"{meant!r}: the hold is kept, but holds nothing back until it does\n")
    for declared in ("nas01/web", "nas01", "web"):
        assert invoke("hold", declared, "--inventory", hosts, "--holds", holds)[2] == ""

def _unit_environment(unit: str) -> dict[str, str]:
    text = (data_dir("systemd") / unit).read_text()
    return dict(line.removeprefix("Environment=").split("=", 1) for line in text.splitlines()
                if line.startswith("Environment="))


def test_the_remediate_unit_acts_on_the_lines_the_run_unit_writes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Remediation reads only the lines of run's instance, named from the inventory and
    checkpoint paths: the two shipped units must resolve the same one, and share their files."""
    from supervisor.cli import from_env
    from supervisor.remediation.commands import _instance

    def instance(unit: str) -> str:
        environment = _unit_environment(unit)
        for variable in ("SUPERVISOR_INSTANCE", "SUPERVISOR_CHECKPOINT"):
            monkeypatch.delenv(variable, raising=False)
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        return _instance(None, Path(environment["SUPERVISOR_INVENTORY"]),
                         from_env(None, "SUPERVISOR_CHECKPOINT", DEFAULT_CHECKPOINT))

    assert instance("homelab-supervisor-remediate.service") == instance(
        "homelab-supervisor.service")
    run = _unit_environment("homelab-supervisor.service")
    remediate = _unit_environment("homelab-supervisor-remediate.service")
    for variable in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_EVENTS",
                     "SUPERVISOR_REMEDIATIONS"):
        assert remediate[variable] == run[variable]
