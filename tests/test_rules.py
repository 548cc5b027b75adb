from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.errors import RuleError
from supervisor.rules import default_rules_dir, load_rules

RULE = """
  - id: {id}
    condition: unhealthy_service
    match: "service.actual.status != 'ok'"
    event: reconcile_required
    action: redeploy
"""


def rule_set(tmp_path: Path, name: str, text: str) -> Path:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "rules.yaml").write_text(text)
    return directory


def problems(*sources: Path) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load_rules(list(sources))
    return [str(p) for p in caught.value.problems]


def test_default_rules_load_and_cover_every_condition() -> None:
    from supervisor.registry import CONDITIONS

    rules = load_rules([default_rules_dir()])
    assert {rule.condition for rule in rules.rules} == set(CONDITIONS)
    assert all(rule.description for rule in rules.rules)
    assert all(rule.reason is not None for rule in rules.rules)


def test_invalid_jmespath_names_rule_file_and_line(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "mine", "rules:\n" + RULE.format(id="bad").replace(
        "\"service.actual.status != 'ok'\"", "\"service.actual.status ==\""))
    assert problems(source) == [
        (f"{source}/rules.yaml:5:37: rules[0].match: rule 'bad': invalid JMESPath: "
        "the expression ends too early: 'service.actual.status =='")
    ]


def test_unknown_function(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "mine", "rules:\n" + RULE.format(id="f").replace(
        "\"service.actual.status != 'ok'\"", "\"agee(service.actual.since) > `1`\""))
    assert problems(source)[0].endswith("rule 'f': unknown function agee() in "
                                        "'agee(service.actual.since) > `1`'")


def test_schema_problems_name_the_rule(tmp_path: Path) -> None:
    text = "rules:\n" + RULE.format(id="ev").replace("reconcile_required", "reconcile_now")
    text += "  - id: incomplete\n    condition: unhealthy_service\n"
    found = problems(rule_set(tmp_path, "mine", text))
    assert any("rules[0].event: rule 'ev': string \"reconcile_now\" is not one of" in p
               for p in found)
    assert any("rules[1]: rule 'incomplete': missing required key 'match'" in p for p in found)
    assert any("missing required key 'event'" in p for p in found)


def test_unknown_key_in_a_rule(tmp_path: Path) -> None:
    text = "rules:\n" + RULE.format(id="k") + "    serverity: critical\n"
    (problem,) = problems(rule_set(tmp_path, "mine", text))
    assert "rule 'k': unknown key 'serverity' (did you mean 'severity'?)" in problem


def test_unknown_condition_unless_declared(tmp_path: Path) -> None:
    text = "rules:\n" + RULE.format(id="c").replace("unhealthy_service", "version_drift")
    assert "unknown condition 'version_drift'" in problems(rule_set(tmp_path, "a", text))[0]
    declared = "conditions:\n  version_drift: running version differs\n" + text
    rules = load_rules([rule_set(tmp_path, "b", declared)])
    assert rules.rules[0].condition == "version_drift"


def test_duplicate_id_across_files_is_an_error(tmp_path: Path) -> None:
    first = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="same"))
    second = rule_set(tmp_path, "b", "rules:\n" + RULE.format(id="same"))
    (problem,) = problems(first, second)
    assert problem.startswith(f"{second}/rules.yaml:3:9: rules[0].id: rule 'same': ")
    assert f"already defined in {first}/rules.yaml (say 'override: true'" in problem


def test_override_replaces_in_place(tmp_path: Path) -> None:
    first = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="one") + RULE.format(id="two"))
    second = rule_set(tmp_path, "b", "rules:\n" + RULE.format(id="one").replace(
        "redeploy", "restart") + "    override: true\n" + RULE.format(id="three"))
    rules = load_rules([first, second])
    assert [(r.id, r.action) for r in rules.rules] == [
        ("one", "restart"), ("two", "redeploy"), ("three", "redeploy")]


def test_override_of_nothing_is_an_error(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="x") + "    override: true\n")
    assert "rule 'x' overrides no earlier rule" in problems(source)[0]


def test_params_layer_and_the_command_line_wins(tmp_path: Path) -> None:
    first = rule_set(tmp_path, "a", "params: {a: 1, b: 1, c: 1}\nrules:\n" + RULE.format(id="r")
                     + "    params: {b: 2, c: 2}\n")
    second = rule_set(tmp_path, "b", "params: {a: 3}\nrules: []\n")
    rules = load_rules([first, second], params={"c": 9})
    assert rules.rules[0].params == {"a": 3, "b": 2, "c": 9}


def test_hosted_services_scope_needs_a_node_rule(tmp_path: Path) -> None:
    text = "rules:\n" + RULE.format(id="h") + "    overrules: {subjects: hosted_services}\n"
    assert "'hosted_services' only applies to node rules" in problems(
        rule_set(tmp_path, "a", text))[0]


def test_bad_placeholder_in_reason(tmp_path: Path) -> None:
    text = "rules:\n" + RULE.format(id="r") + '    reason: "{{ service.( }}"\n'
    assert "rule 'r': invalid JMESPath" in problems(rule_set(tmp_path, "a", text))[0]


def test_rules_directory_must_exist_and_hold_rules(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert problems(tmp_path / "missing", tmp_path / "empty") == [
        f"{tmp_path}/empty: holds no rule files (*.yaml)",
        f"{tmp_path}/missing: rules directory does not exist",
    ]


def test_bad_yaml_in_rule_file(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "a", "rules:\n  - id: [\n")
    assert "invalid YAML" in problems(source)[0]


def test_files_load_in_name_order(tmp_path: Path) -> None:
    directory = tmp_path / "set"
    directory.mkdir()
    (directory / "20-b.yaml").write_text("rules:\n" + RULE.format(id="b"))
    (directory / "10-a.yaml").write_text("rules:\n" + RULE.format(id="a"))
    assert [r.id for r in load_rules([directory]).rules] == ["a", "b"]


def test_problems_in_several_rules_are_all_reported(tmp_path: Path) -> None:
    text = ("rules:\n" + RULE.format(id="a").replace("reconcile_required", "reconcile_now")
            + RULE.format(id="b").replace("\"service.actual.status != 'ok'\"", "\"a ==\""))
    found = problems(rule_set(tmp_path, "mine", text))
    assert len(found) == 2
    assert "rule 'a'" in found[0] and "rule 'b': invalid JMESPath" in found[1]


def test_a_rule_can_be_placed_between_existing_ones(tmp_path: Path) -> None:
    first = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="one") + RULE.format(id="two"))
    second = rule_set(tmp_path, "b", "rules:\n" + RULE.format(id="between") + "    after: one\n"
                      + RULE.format(id="start") + "    before: one\n"
                      + RULE.format(id="two") + "    override: true\n    before: start\n")
    assert [r.id for r in load_rules([first, second]).rules] == ["two", "start", "one", "between"]


def test_placing_next_to_an_unknown_rule_is_an_error(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="x") + "    before: nope\n")
    assert "no earlier rule 'nope' to place it before" in problems(source)[0]


def test_a_minimal_override_disables_a_rule(tmp_path: Path) -> None:
    quiet = rule_set(tmp_path, "quiet", "rules:\n  - {id: service-unmanaged, override: true, "
                     "enabled: false}\n")
    rule = load_rules([default_rules_dir(), quiet]).rule("service-unmanaged")
    default = load_rules([default_rules_dir()]).rule("service-unmanaged")
    assert not rule.enabled
    assert rule._replace(enabled=True, file="", written=default.written) == \
        default._replace(file="")


def test_a_params_only_override_keeps_the_rest_and_merges_params(tmp_path: Path) -> None:
    first = rule_set(tmp_path, "a", "rules:\n" + RULE.format(id="one") +
                     "    params: {limit: 1, window: 60}\n    severity: critical\n")
    second = rule_set(tmp_path, "b", "rules:\n  - id: one\n    override: true\n"
                      "    params: {limit: 5}\n")
    (rule,) = load_rules([first, second]).rules
    assert rule.params == {"limit": 5, "window": 60}
    assert (rule.condition, rule.action, rule.severity) == (
        "unhealthy_service", "redeploy", "critical")
    assert rule.file == f"{second}/rules.yaml"


def test_a_new_rule_still_needs_every_required_key(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "a", "rules:\n  - {id: fresh, enabled: false}\n")
    found = problems(source)
    assert [p.rsplit(": ", 1)[1] for p in found] == [
        f"missing required key '{key}'" for key in ("action", "condition", "event", "match")]


BROKEN = """rules:
  - id: folded
    condition: unhealthy_service
    match: >-   # a block scalar, folded over lines
      service.actual != `null`
      && service.actual.restarts > 5
    event: reconcile_recommended
    action: look
    reason: "{{ service.id }} restarted {{ service.actual.restarts = 3 }} times"
  - id: quoted
    condition: unhealthy_service
    match: 'service.name == ''x'' && lenght(incidents) > `0`'
    event: reconcile_recommended
    action: look
  - id: unclosed
    condition: unhealthy_service
    match: "service.actual.status == 'ok"
    event: reconcile_recommended
    action: look
"""


def test_jmespath_errors_point_at_the_spot_in_the_file(tmp_path: Path) -> None:
    source = rule_set(tmp_path, "mine", BROKEN)
    found = problems(source)
    file = f"{source}/rules.yaml"
    assert [problem.split(": rule ")[0] for problem in found] == [
        f"{file}:6:36: rules[0].match", f"{file}:9:68: rules[0].reason",
        f"{file}:12:38: rules[1].match", f"{file}:17:38: rules[2].match"]
    assert ("invalid JMESPath: a bare number is not a value in JMESPath: write `5` (in "
            "backquotes): ") in found[0]
    assert "invalid JMESPath: '=' is not an operator: to compare, write '=='" in found[1]
    assert "unknown function lenght() (did you mean length()?)" in found[2]
    assert "invalid JMESPath: ' opened here is never closed" in found[3]


def test_a_forgotten_override_is_named_instead_of_four_missing_keys(tmp_path: Path) -> None:
    quiet = rule_set(tmp_path, "quiet", "rules:\n  - id: service-unmanaged\n    enabled: false\n")
    (problem,) = problems(default_rules_dir(), quiet)
    assert problem.startswith(f"{quiet}/rules.yaml:2:9: rules[0].id: ")
    assert problem.endswith("is already defined in "
                            f"{default_rules_dir()}/default.yaml: say 'override: true' to change "
                            "it (an override needs only the keys it changes)")
