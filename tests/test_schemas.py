from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor import registry, schemas
from supervisor.loader import load_yaml
from supervisor.schemas import JsonSource


def inventory_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "services.yaml"
    path.write_text(text)
    document = load_yaml(path, "services.yaml")
    return [str(p) for p in schemas.check("inventory", document.value, document)]


def record_problems(definition: str, record: dict[str, Any]) -> list[str]:
    return [str(p) for p in schemas.check("world", record, JsonSource("r.json"), definition)]


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, "services:\n  web:\n    depend_on: [db]\n") == [
        ("services.yaml:3:5: services.web.depend_on: unknown key 'depend_on' "
        "(did you mean 'depends_on'?)")
    ]


def test_x_keys_are_allowed_at_every_level(tmp_path: Path) -> None:
    text = "x-top: 1\nnode: {x-rack: 2}\nservices:\n  web: {x-owner: alice}\n"
    assert inventory_problems(tmp_path, text) == []


def test_wrong_type_names_expected_and_got(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, 'services:\n  web:\n    critical: "yes"\n') == [
        'services.yaml:3:15: services.web.critical: expected boolean, got string "yes"'
    ]


def test_all_problems_are_reported(tmp_path: Path) -> None:
    text = "services:\n  web:\n    critical: 1\n    image: 2\n  Bad: {}\nextra: 1\n"
    assert len(inventory_problems(tmp_path, text)) == 4


def test_missing_services_key(tmp_path: Path) -> None:
    assert inventory_problems(tmp_path, "node: {critical: true}\n") == [
        "services.yaml:1:1: missing required key 'services'"
    ]


def test_invalid_service_name(tmp_path: Path) -> None:
    (problem,) = inventory_problems(tmp_path, "services:\n  Web: {}\n")
    assert problem.startswith("services.yaml:2:3: services.Web: name 'Web' is not a valid name")


def test_unknown_status_lists_the_choices() -> None:
    assert record_problems("service", {"status": "broken"}) == [
        ('r.json: status: string "broken" is not one of: '
        "ok, degraded, failed, stopped, starting, unknown")
    ]


def test_naive_timestamp_is_an_error() -> None:
    (problem,) = record_problems("node", {"status": "online", "last_seen": "2026-11-26T10:00:00"})
    assert "last_seen" in problem
    assert "not an RFC 3339 timestamp with a zone" in problem


@pytest.mark.parametrize("moment", [
    "2026-11-26T10:00:00Z", "2026-11-26T10:00:00.5+01:00", "2026-11-26t10:00:00z"])
def test_zoned_timestamps_pass(moment: str) -> None:
    assert record_problems("node", {"status": "online", "last_seen": moment}) == []


@pytest.mark.parametrize("moment", ["2026-11-26", "2026-13-01T00:00:00Z", "yesterday", ""])
def test_other_timestamps_fail(moment: str) -> None:
    assert record_problems("node", {"status": "online", "last_seen": moment}) != []


def test_observers_may_add_fields() -> None:
    assert record_problems("service", {"status": "ok", "cpu": 0.3, "ports": [80]}) == []


def test_observer_fields_the_project_relies_on_are_typed() -> None:
    assert sorted(record_problems("service", {"status": "ok", "restarts": "6",
                                              "exit_code": 1.5})) == [
        'r.json: exit_code: expected integer, got number 1.5',
        'r.json: restarts: expected integer, got string "6"']
    assert record_problems("service", {"status": "ok", "restarts": 0, "exit_code": -1,
                                       "image": "web:1", "health": "healthy", "lag": "x"}) == []


def test_missing_required_field() -> None:
    assert record_problems("node", {"status": "online"}) == [
        "r.json: missing required key 'last_seen'"]


def test_each_missing_key_is_said_once() -> None:
    problems = schemas.check("checkpoint", {"version": 2, "open": {}}, JsonSource("c.json"))
    assert [str(problem) for problem in problems] == [
        f"c.json: missing required key '{key}'"
        for key in ("instance", "inventory", "log_size", "log_tail")]


@pytest.mark.parametrize("status", ["offline", "unknown"])
def test_a_node_never_seen_has_no_last_seen(status: str) -> None:
    assert record_problems("node", {"status": status}) == []


def test_rules_schema_enums_match_the_registries() -> None:
    definitions = schemas.validator("rules").schema["$defs"]
    rule = definitions["rule"]["properties"]
    assert rule["event"]["enum"] == list(registry.EVENT_TYPES)
    assert rule["severity"]["enum"] == list(registry.SEVERITIES)
    assert rule["subject"]["enum"] == list(registry.SUBJECT_KINDS)
    assert definitions["overrules"]["properties"]["subjects"]["enum"] == list(
        registry.OVERRULE_SCOPES)
    assert set(registry.DEFAULT_SEVERITY) == set(registry.EVENT_TYPES)
    assert rule["summary"]["enum"] == list(registry.RULE_SUMMARIES)
    assert set(registry.DEFAULT_SUMMARY) == set(registry.EVENT_TYPES)
    assert set(registry.DEFAULT_SUMMARY.values()) <= set(registry.RULE_SUMMARIES)
    assert set(registry.RULE_SUMMARIES) <= set(registry.SUMMARY_STATES)


@pytest.mark.parametrize("name", ["inventory", "world", "rules"])
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(schemas.validator(name).schema)


def test_format_time_pads_early_years() -> None:
    from supervisor.timestamps import format_time, parse_time

    assert format_time(parse_time("0999-01-01T00:00:00Z")) == "0999-01-01T00:00:00Z"
    assert format_time(parse_time("2026-11-26T11:00:00.250+01:00")) == "2026-11-26T10:00:00.25Z"


def verdict_cases() -> list[tuple[str, str | None, Any]]:
    """Valid documents from the fixtures, and each mutated in ways that break the schema."""
    import json as json_module

    from support.scenarios import FIXTURES

    from supervisor.loader import load_yaml

    cases: list[tuple[str, str | None, Any]] = []
    for path in sorted(FIXTURES.glob("*/hosts/*/services.yaml")):
        try:
            cases.append(("inventory", None, load_yaml(path).value))
        except Exception:  # noqa: BLE001, S112 - the bad-input fixtures do not load at all
            continue
    for kind, definition in (("nodes", "node"), ("services/*", "service"),
                             ("deployments", "deployment"), ("incidents", "incident")):
        for path in sorted(FIXTURES.glob(f"*/world/{kind}/*.json"))[:40]:
            try:
                cases.append(("world", definition, json_module.loads(path.read_text())))
            except ValueError:
                continue
    for path in sorted(FIXTURES.glob("*/world.json")):
        cases.append(("world", None, json_module.loads(path.read_text())))
    mutated: list[tuple[str, str | None, Any]] = []
    for name, definition, value in cases:
        if not isinstance(value, dict):
            continue
        for key in list(value)[:4]:
            for replacement in (None, 7, "2026-11-26T10:00:00", "Bad Name", [], {"x": 1}, True):
                mutated.append((name, definition, {**value, key: replacement}))
            mutated.append((name, definition, {k: v for k, v in value.items() if k != key}))
        mutated.append((name, definition, {**value, "depend_on": ["db"]}))
    return cases + mutated


def test_fast_and_reference_validators_agree() -> None:
    cases = verdict_cases()
    assert len(cases) > 500
    valid = 0
    for name, definition, instance in cases:
        fast = schemas.fast_validator(name, definition).is_valid(instance)
        reference = not list(schemas.validator(name, definition).iter_errors(instance))
        assert fast == reference, (name, definition, instance)
        valid += fast
    assert 0 < valid < len(cases)  # both verdicts are exercised
