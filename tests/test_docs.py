"""The rule authors' guide is tested: every example in it must work as written."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.scenarios import FIXTURES, ROOT, evaluate_dir

from supervisor import schemas
from supervisor.functions import custom_function_docs
from supervisor.loader import YamlDocument
from supervisor.rules import default_rules_dir, load_rules

GUIDE = ROOT / "docs" / "rules.md"
TEXT = GUIDE.read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", TEXT, re.DOTALL)


YAML_BLOCKS = blocks("yaml")


def test_the_guide_has_examples() -> None:
    assert len(YAML_BLOCKS) >= 5


@pytest.mark.parametrize("text", YAML_BLOCKS, ids=[f"yaml-{i}" for i in range(len(YAML_BLOCKS))])
def test_yaml_example_is_valid(text: str, tmp_path: Path) -> None:
    content = yaml.safe_load(text)
    if "rules" in content:
        (tmp_path / "example.yaml").write_text(text)
        load_rules([default_rules_dir(), tmp_path])
    else:
        document = YamlDocument(text, "example")
        assert schemas.check("expect", document.value, document) == []


def test_json_output_example_is_real() -> None:
    shown = json.loads(blocks("json")[1])
    assert shown == evaluate_dir(FIXTURES / "missing-service").to_json()


def contained(part: Any, whole: Any) -> bool:
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contained(value, whole[key]) for key, value in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(contained(item, candidate) for candidate in whole) for item in part)
    return bool(part == whole)


def test_document_example_is_part_of_the_real_document() -> None:
    from supervisor.inputs import Inputs, load
    from supervisor.model import Subject

    homelab = FIXTURES / "homelab"
    loaded = load(Inputs(inventory=homelab / "hosts", world=homelab / "world"))
    document = loaded.state.document(Subject("service", "edge01/home-assistant"))
    document["params"] = loaded.rules.rules[0].params
    shown = json.loads(blocks("json")[0])
    assert contained(shown, document)


def test_every_custom_function_is_documented() -> None:
    flat = " ".join(TEXT.split())
    for name, doc in custom_function_docs().items():
        assert f"- {doc}" in flat, name


def test_every_default_rule_is_in_the_conditions_table() -> None:
    for rule in load_rules([default_rules_dir()]).rules:
        assert f"`{rule.id}`" in TEXT, rule.id


def test_explain_example_is_the_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from supervisor.cli import app

    (example,) = [b for b in blocks("text") if b.startswith("$ supervisor explain")]
    command, shown = example.split("\n", 1)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    result = CliRunner().invoke(app, command.split()[2:])
    assert result.stdout == shown


def test_the_readme_layout_names_every_module() -> None:
    table = (ROOT / "README.md").read_text().split("## Project layout", 1)[1]
    named = set(re.findall(r"`(\w+)`", table))
    # Subpackages' modules too: a module moved into one must still be findable from the README.
    modules = {path.stem for path in (ROOT / "supervisor").rglob("*.py")} - {"__init__"}
    assert modules - named == set()
