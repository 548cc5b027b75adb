"""Every limit holds by default, and each can be changed from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scenarios import ScenarioFactory, evaluate_dir, ok
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.errors import InputError
from supervisor.limits import Limits, current

TWO = {"n1": "services:\n  a: {}\n  b: {}\n", "n2": "services:\n  c: {}\n"}


def fails(directory: Path, text: str) -> None:
    with pytest.raises(InputError) as caught:
        evaluate_dir(directory)
    assert any(text in str(problem) for problem in caught.value.problems), caught.value


def test_defaults() -> None:
    assert current() == Limits()
    assert Limits().services >= 1_000_000 and Limits().file_bytes >= 64 * 1024 * 1024


def test_file_size(scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario(TWO, services={"n1/a": ok()})
    monkeypatch.setenv("SUPERVISOR_MAX_FILE_BYTES", "40")
    fails(root, "bytes; the limit is 40 (SUPERVISOR_MAX_FILE_BYTES)")


def test_depth(scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario({"n1": "services:\n  a:\n    x-deep: {a: {b: {c: 1}}}\n"})
    evaluate_dir(root)
    monkeypatch.setenv("SUPERVISOR_MAX_DEPTH", "4")
    fails(root, "nested more than 4 levels deep (SUPERVISOR_MAX_DEPTH)")


def test_string_length(scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario({"n1": "services:\n  a: {image: 'registry.example.org/team/app:1.2.3'}\n"},
                    services={"n1/a": {**ok(), "note": "x" * 50}})
    evaluate_dir(root)
    monkeypatch.setenv("SUPERVISOR_MAX_STRING_CHARS", "30")
    fails(root, "services.a.image: a string of 35 characters; the limit is 30")
    fails(root, "holds a string of 50 characters; the limit is 30 (SUPERVISOR_MAX_STRING_CHARS)")


def test_node_count(scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario(TWO)
    monkeypatch.setenv("SUPERVISOR_MAX_NODES", "1")
    fails(root, "holds more than 1 nodes (2); raise SUPERVISOR_MAX_NODES if that is right")


def test_service_count(scenario: ScenarioFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario({"n1": "services: {}\n"}, services={"n1/a": ok(), "n1/b": ok(), "n1/c": ok()})
    monkeypatch.setenv("SUPERVISOR_MAX_SERVICES", "2")
    fails(root, "holds more than 2 services (3); raise SUPERVISOR_MAX_SERVICES")
    (root / "world" / "services" / "n1" / "c.json").unlink()
    evaluate_dir(root)
    (root / "hosts" / "n1" / "services.yaml").write_text("services: {a: {}, b: {}, c: {}}\n")
    fails(root, "holds more than 2 services (3)")


def test_a_bad_limit_is_bad_usage(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["eval", str(tmp_path)],
                                env={"SUPERVISOR_MAX_DEPTH": "deep"})
    assert result.exit_code == 2
    assert "SUPERVISOR_MAX_DEPTH: 'deep' is not a positive whole number" in result.stderr


def test_a_five_megabyte_string_is_refused_by_default(scenario: ScenarioFactory) -> None:
    root = scenario({"n1": "services: {a: {}}\n"},
                    services={"n1/a": {**ok(), "log": "y" * 5_000_000}})
    fails(root, "the limit is 1048576")
