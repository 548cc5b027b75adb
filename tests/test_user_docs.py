"""The user documents say what the code does: docs/formats.md against the schemas, the README's
first rule and layout, and what docs/events.md says about `run` and its units."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.scenarios import FIXTURES, ROOT
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.inventory import load_inventory
from supervisor.world import load_world

DOCS = ROOT / "docs"
FORMATS = (DOCS / "formats.md").read_text()
README = (ROOT / "README.md").read_text()


def tables(text: str) -> dict[str, list[list[str]]]:
    """Each `<!-- schema: NAME -->` marker and the rows of the table that follows it."""
    found = {}
    for match in re.finditer(r"<!-- schema: (\S+) -->\n((?:\|.*\|\n)+)", text):
        rows = [[cell.strip() for cell in line.strip("|").split(" | ")]
                for line in match.group(2).splitlines()[2:]]
        found[match.group(1)] = rows
    return found


def definition(name: str) -> dict[str, Any]:
    schema_name, _, part = name.partition("#")
    schema = json.loads((ROOT / "schemas" / f"{schema_name}.schema.json").read_text())
    return schema["$defs"][part] if part else schema


FORMAT_TABLES = tables(FORMATS)


def test_formats_describes_every_record_of_the_inventory_and_the_world() -> None:
    world = json.loads((ROOT / "schemas" / "world.schema.json").read_text())
    records = {"world#" + name for name in world["$defs"]
               if world["$defs"][name].get("type") == "object" and name != "observer"}
    assert set(FORMAT_TABLES) == {"inventory", "inventory#node", "inventory#service", "world",
                                  *records}


@pytest.mark.parametrize("name", sorted(FORMAT_TABLES))
def test_formats_table_matches_the_schema(name: str) -> None:
    schema = definition(name)
    rows = FORMAT_TABLES[name]
    keys = [re.fullmatch(r"`(\w+)`", row[0]).group(1) for row in rows]  # type: ignore[union-attr]
    assert sorted(keys) == sorted(schema["properties"])
    required = {key for key, row in zip(keys, rows, strict=True) if row[1] == "yes"}
    assert required == set(schema.get("required", []))
    assert all(row[1] in ("yes", "no") for row in rows)
    for key, row in zip(keys, rows, strict=True):
        for value in schema["properties"][key].get("enum", []):  # every allowed value named
            assert f"`{value}`" in row[2], (key, value)


def example(language: str, text: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_formats_examples_load(tmp_path: Path) -> None:
    (inventory_example,) = example("yaml", FORMATS)
    (world_example,) = example("json", FORMATS)
    hosts = tmp_path / "hosts"
    (hosts / "nas01").mkdir(parents=True)
    (hosts / "nas01" / "services.yaml").write_text(inventory_example)
    (hosts / "infra01").mkdir()
    (hosts / "infra01" / "services.yaml").write_text("services:\n  redis: {}\n")
    inventory = load_inventory(hosts)
    assert inventory.services["nas01/nextcloud"].depends_on == ("nas01/postgres", "infra01/redis")
    assert inventory.services["nas01/postgres"].desired["x-owner"] == "alice"
    (tmp_path / "world.json").write_text(world_example)
    world = load_world(tmp_path / "world.json")
    assert set(world.services) == {"nas01/postgres", "nas01/nextcloud"}
    result = CliRunner().invoke(app, ["validate", "--inventory", str(hosts), "--world",
                                      str(tmp_path / "world.json")], env={"NO_COLOR": "1"})
    assert result.exit_code == 0, result.stderr


def test_formats_directory_layout_is_the_one_read(tmp_path: Path) -> None:
    (layout,) = [block for block in example("text", FORMATS) if block.startswith("world/")]
    paths = [line.split()[0] for line in layout.splitlines()[1:]]
    assert paths == ["world.json", "nodes/<node>.json", "services/<node>/<service>.json",
                     "deployments/<any", "incidents/<any"]
    world = load_world(FIXTURES / "homelab" / "world")
    assert world.nodes and world.services and world.deployments and world.incidents


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("SUPERVISOR_INVENTORY", "SUPERVISOR_WORLD", "SUPERVISOR_RULES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    return CliRunner()


def test_the_readme_first_rule_fires_on_the_example_homelab(cli: CliRunner,
                                                            tmp_path: Path) -> None:
    part = README.split("## Your first rule", 1)[1].split("\n## ", 1)[0]
    (rule_file,) = example("yaml", part)
    (shown,) = example("text", part)
    named = re.search(r"Put this in `(my-rules/\w+\.yaml)`", part)
    assert named is not None
    (tmp_path / named.group(1)).parent.mkdir()
    (tmp_path / named.group(1)).write_text(rule_file)
    rule_id = yaml.safe_load(rule_file)["rules"][0]["id"]
    result = cli.invoke(app, ["eval", str(FIXTURES / "homelab"), "--rules",
                              str(tmp_path / "my-rules")])
    assert result.exit_code == 0, result.stderr
    assert f"[{rule_id}]" in result.stdout
    assert shown in result.stdout


def test_the_readme_layout_names_every_document() -> None:
    table = README.split("## Project layout", 1)[1]
    for document in sorted(DOCS.glob("*.md")):
        assert f"`{document.name}`" in table, document.name


def test_events_md_names_the_commands_the_units_run() -> None:
    events = (DOCS / "events.md").read_text()
    described = dict(re.findall(r"`(homelab-supervisor[\w-]*\.service)` runs `supervisor ([^`]+)`",
                                events))
    assert "homelab-supervisor.service" in described
    for unit, command in described.items():
        text = (ROOT / "systemd" / unit).read_text().replace("\\\n", " ")
        start = re.search(r"^ExecStart=\S*supervisor (.*)$", text, re.MULTILINE)
        assert start is not None, unit
        assert " ".join(start.group(1).split()).startswith(command), unit


def test_run_prints_the_open_count_apart_from_the_lines_written(
        cli: CliRunner, tmp_path: Path) -> None:
    events = (DOCS / "events.md").read_text()
    shown = re.search(r"^\S+ run \w+: (unstable, .*)$", events, re.MULTILINE)
    assert shown is not None
    result = cli.invoke(app, ["run", "--once", str(FIXTURES / "homelab"), "--now",
                              "2026-11-26T10:01:00Z", "--events", str(tmp_path / "events.log"),
                              "--checkpoint", str(tmp_path / "checkpoint.json")])
    assert result.exit_code == 0, result.stderr
    printed = result.stdout.split(": ", 1)[1].rstrip("\n")
    assert printed == shown.group(1)
    assert printed == ("unstable, 7 open; wrote 8 lines (1 reconcile_blocked, "
                       "2 reconcile_recommended, 4 reconcile_required, 1 supervisor_summary)")
    again = cli.invoke(app, ["run", "--once", str(FIXTURES / "homelab"), "--now",
                             "2026-11-26T10:01:00Z", "--events", str(tmp_path / "events.log"),
                             "--checkpoint", str(tmp_path / "checkpoint.json")])
    assert again.stdout.endswith(": inputs unchanged, nothing to do\n")


def test_the_rule_keys_table_matches_the_rules_schema() -> None:
    guide = (DOCS / "rules.md").read_text()
    table = guide.split("| key | required | meaning |", 1)[1].split("\n\n", 1)[0]
    named = set(re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \|", table, re.MULTILINE))
    keys = {key for pair in named for key in pair if key}
    schema = definition("rules#rule")
    assert keys == set(schema["properties"])


def test_matchers_briefly_says_what_the_matchers_do() -> None:
    from supervisor.compiler import compile_ast
    from supervisor.expressions import compile_expression
    from supervisor.functions import RuleFunctions, function_names
    from supervisor.timestamps import parse_time

    guide = (DOCS / "rules.md").read_text()
    assert "### Matchers, briefly" in guide
    functions = RuleFunctions(parse_time("2026-11-26T10:00:00Z"))
    document = {"service": {"actual": {"status": "ok", "restarts": 7, "version": "6"}},
                "incidents": [{"id": "a", "status": "open"}, {"id": "b", "status": "resolved"}]}

    def value(text: str) -> Any:
        ast, problems = compile_expression(text, set(function_names()))
        assert problems == [], text
        return compile_ast(ast, functions)(document)

    assert value("service.actual.status") == "ok" and value("service.nothing.status") is None
    assert value("service.actual.status == 'ok'") is True
    assert value("service.actual.restarts > `5`") is True
    assert value("service.actual.version > `5`") is None  # a string: not ordered
    assert value("null") is None  # a field called null
    assert value("incidents[?status != 'resolved'].id") == ["a"]
    assert value("incidents[*].id") == ["a", "b"]
    assert value("!(service.actual.restarts > `5`)") is False
    _, problems = compile_expression("service.actual.restarts > 5", set(function_names()))
    assert problems  # a bare number is a syntax error


def test_the_newcomer_example_passes_and_its_rules_check_alone(cli: CliRunner) -> None:
    example_dir = DOCS / "examples" / "newcomer"
    result = cli.invoke(app, ["test", str(example_dir)])
    assert result.exit_code == 0, result.stdout
    result = cli.invoke(app, ["validate", "--rules-only", "--strict", "--rules",
                              str(example_dir / "rules")])
    assert result.exit_code == 0, result.stderr
    # Without the rule set, the scenario sees what those rules change: the node offline after
    # 5 minutes and the unmanaged service reported.
    result = cli.invoke(app, ["eval", "--inventory", str(example_dir / "hosts"), "--world",
                              str(example_dir / "world.json"), "--format", "json"])
    plain = {(r["rule"], r["subject"]["id"]) for r in json.loads(result.stdout)["recommendations"]}
    assert ("node-offline", "pi4") in plain and ("service-unmanaged", "pi4/speedtest") in plain


def test_the_readme_output_is_the_real_table(cli: CliRunner) -> None:
    part = README.split("## Reading the output", 1)[1]
    shown = example("text", part)[0]
    real = cli.invoke(app, ["eval", str(FIXTURES / "homelab")]).stdout
    groups = [group for group in shown.split("\n\n") if group.strip() != "..."]
    for group in groups:
        assert group.removesuffix("...\n").rstrip("\n") in real, group
