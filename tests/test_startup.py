"""Start-up: a command imports what it needs and nothing else, and the lazily built commands are
the same commands, with the same help, as before."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from support.scenarios import FIXTURES
from typer.testing import CliRunner

from supervisor import cli, scenarios
from supervisor.cli import COMMANDS, app

# What `eval` must not import once the cache is warm, on a lab without expect.yaml or history:
# PyYAML and the schema validator (the cache holds the parsed, checked inputs), hashlib with
# OpenSSL (a table shows no fingerprints, and the cache's checksum is zlib's), the scenario
# runner, the remediation history with the event log, and every other command's module.
NOT_FOR_EVAL = (
    "yaml", "jsonschema", "jsonschema_rs", "hashlib", "_hashlib",
    "supervisor.yamlbuild", "supervisor.scenarios",
    "supervisor.remediation.history", "supervisor.eventlog",
    "supervisor.commands.run", "supervisor.observe.commands", "supervisor.notify.commands",
    "supervisor.importer", "supervisor.remediation.commands",
)


def imported_by(argv: list[str], cache_dir: Path) -> set[str]:
    """The modules a fresh interpreter has imported after running the command. The files under
    test are seconds old, so the cache is told to trust them, as it would two seconds later."""
    code = ("import json, sys\nfrom supervisor import cache\ncache.RACY_NS = -1\n"
            "from supervisor.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {"SUPERVISOR_CACHE_DIR": str(cache_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True,
                            text=True, env=env, check=True)
    return set(json.loads(result.stderr.splitlines()[-1]))


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A scenario directory as a user has one: hosts/ and world/, no expect.yaml."""
    directory = tmp_path / "lab"
    for part in ("hosts", "world"):
        shutil.copytree(FIXTURES / "homelab" / part, directory / part)
    return directory


def test_eval_with_a_warm_cache_imports_only_what_it_needs(lab: Path, tmp_path: Path) -> None:
    cold = imported_by(["eval", str(lab)], tmp_path / "cache")
    assert "yaml" in cold  # the cold run parses, and fills the cache
    warm = imported_by(["eval", str(lab)], tmp_path / "cache")
    assert sorted(warm.intersection(NOT_FOR_EVAL)) == []
    assert "supervisor.commands.evaluation" in warm and "supervisor.engine" in warm


def test_an_unchanged_run_imports_neither_the_engine_nor_the_readers(lab: Path,
                                                                    tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    argv = ["run", str(lab), "--once", "--quiet", "--now", "2026-11-26T10:01:00Z",
            "--events", str(state / "events.log"), "--checkpoint", str(state / "checkpoint.json")]
    evaluated = imported_by(argv, tmp_path / "cache")
    assert "supervisor.engine" in evaluated and "supervisor.inventory" in evaluated
    unchanged = imported_by(argv, tmp_path / "cache")
    assert sorted(unchanged.intersection({
        "supervisor.engine", "supervisor.inventory", "supervisor.world", "supervisor.rules",
        "supervisor.merge", "yaml", "jmespath"})) == []


def test_a_history_or_an_expectation_is_still_read(lab: Path, tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "homelab" / "expect.yaml", lab / "expect.yaml")
    (lab / "remediations.json").write_text('{"subjects": {}}\n')
    imported_by(["eval", str(lab)], tmp_path / "cache")
    warm = imported_by(["eval", str(lab)], tmp_path / "cache")
    assert {"supervisor.scenarios", "supervisor.remediation.history"} <= warm


def test_the_expectation_file_is_named_once_in_meaning() -> None:
    assert cli.EXPECT_FILE == scenarios.EXPECT_FILE


def test_help_lists_every_command_in_order_with_its_modules_own_help() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listed if line.strip()]
    assert names == list(COMMANDS)
    for line in listed:
        name, _, summary = line.strip().partition(" ")
        command = cli.build_command(name, COMMANDS[name])
        assert summary.strip() == command.get_short_help_str(200)
        assert summary.strip()  # every command says what it does


@pytest.mark.parametrize("group, member", [("observe", "docker"), ("notify", "alertmanager"),
                                           ("import", "compose")])
def test_a_group_still_lists_its_commands(group: str, member: str) -> None:
    result = CliRunner().invoke(app, [group, "--help"])
    assert result.exit_code == 0
    assert member in result.output


def test_a_command_of_a_merged_app_keeps_its_own_options() -> None:
    result = CliRunner().invoke(app, ["hold", "--help"])
    assert result.exit_code == 0
    assert "--holds" in result.output and "Usage: supervisor hold" in result.output


def test_a_typo_is_answered_with_the_commands_not_yet_built() -> None:
    result = CliRunner().invoke(app, ["remediat"])
    assert result.exit_code == 2
    assert "Did you mean 'remediate'" in result.output


def test_completion_offers_every_command() -> None:
    env = {"_SUPERVISOR_COMPLETE": "complete_bash", "COMP_WORDS": "supervisor ",
           "COMP_CWORD": "1"}
    result = CliRunner().invoke(app, [], env=env, prog_name="supervisor")
    assert result.output.split() == list(COMMANDS)


def test_the_program_collects_no_garbage_while_starting_but_does_once_running() -> None:
    # Each collection notes whether it ran while typer and the CLI were being imported; the
    # entry point pauses the collector until then, and the command runs with it on.
    code = ("import gc, json, sys\n"
            "early = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and early.append(\n"
            "    'typer' in sys.modules\n"
            "    and not hasattr(sys.modules.get('supervisor.cli'), 'main')))\n"
            "from supervisor import __main__ as entry\n"
            "sys.argv = ['supervisor', '--version']\n"
            "try:\n    entry.main()\nexcept SystemExit:\n    pass\n"
            "print(json.dumps([any(early), gc.isenabled(), gc.get_freeze_count() > 0]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    collected_early, enabled, frozen = json.loads(result.stdout.splitlines()[-1])
    assert not collected_early
    assert enabled and frozen


def test_python_dash_m_runs_the_program() -> None:
    result = subprocess.run([sys.executable, "-m", "supervisor", "--version"],
                            capture_output=True, text=True, check=True)
    assert result.stdout.startswith("supervisor ")


def test_every_command_of_an_app_whose_commands_stand_at_the_top_is_registered() -> None:
    # `remediate`, `hold` and the rest are one app's commands, each named in COMMANDS: a command
    # added to the app without its line there would silently not exist.
    for where in set(COMMANDS.values()):
        module, attribute = where.split(":")
        target = getattr(importlib.import_module(module), attribute)
        if not isinstance(target, typer.Typer):
            continue
        names = {command.name for command in target.registered_commands}
        if names & set(COMMANDS):
            assert names <= set(COMMANDS), f"{where}: {sorted(names - set(COMMANDS))}"
