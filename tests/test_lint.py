from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.compiler import is_number
from supervisor.inputs import Inputs, load
from supervisor.lint import DOCUMENTS, LEAF, NUMBER, OBSERVED, X_KEYS, lint
from supervisor.rules import default_rules_dir, load_rules

RULE = """
  - id: {id}
    condition: unhealthy_service
    match: "{match}"
    event: reconcile_recommended
    action: look
"""


def lint_rule(tmp_path: Path, match: str, extra: str = "", kind: str = "") -> list[str]:
    text = ("params: {limit: '300', count: 3}\nrules:\n" + RULE.format(id="r", match=match)
            + extra + (f"    subject: {kind}\n" if kind else ""))
    (tmp_path / "rules.yaml").write_text(text)
    return [str(p) for p in lint(load_rules([tmp_path]))]


def test_default_rules_are_clean() -> None:
    assert lint(load_rules([default_rules_dir()])) == []


@pytest.mark.parametrize(("match", "message"), [
    ("service.actaul.status == 'ok'",
     "service.actaul is not in the service document (did you mean 'actual'?)"),
    ("service.actual.stauts == 'ok'",
     "service.actual.stauts is not a field the observer writes (did you mean 'status'?)"),
    ("incidents.id", "incidents.id: incidents is a list (use [*] or a filter), so this is always"),
    ("service.desired != null",
     "null: a bare null is a field name in JMESPath, not a literal; write `null` in backquotes"),
    ("params.limt > `1`", "params.limt: the rule has no param 'limt' (did you mean 'limit'?)"),
    ("age_seconds(service.actual.since) > params.limit",
     "param limit is str '300', but it is compared with <, <=, > or >=: write it as a number"),
    ("failed_streak(deployments, params.limit) > `0`",
     "param limit is str '300', but it is passed to failed_streak() as a number"),
    ("dependencies[?age_seconds(host.actual.last_seen) > params.count]",
     ("params is not in an element of dependencies: inside a filter or projection, names refer "
     "to the element (attach() brings in a value from outside)")),
    ("`false`", "can never fire: the matcher is always False"),
    ("service.actual.status < 'p'",
     ("service.actual.status is not a number, so '<' on it is always null (JMESPath orders "
     "numbers only): the clause can never hold")),
    ("service.actual.restarts >= 'five'", "'five' is not a number, so '>=' on it is always null"),
    ("service.actual.lag_bytes > `5`",
     ("service.actual.lag_bytes may not be a number: where it is not, '>' gives null and the "
     "clause does not hold (JMESPath orders numbers only; to_number() converts a numeric string)")),
    ("max_by(deployments, &started_at).finished_at > now", "'>' on it is always null"),
    ("incidents[?severity > `1`]", "severity is not a number, so '>' on it is always null"),
    ("service.status == 'ok'",
     "service.status is not in the service document (did you mean service.actual.status?)"),
    ("service.image == 'web:1'", ("service.image is not in the service document (did you mean "
                                  "service.desired.image or service.actual.image?)")),
    ("node.last_seen == `null`",
     "node.last_seen is not in the service document (did you mean node.actual.last_seen?)"),
])
def test_lint_finds(tmp_path: Path, match: str, message: str) -> None:
    found = lint_rule(tmp_path, match.replace('"', '\\"'))
    assert any(message in problem for problem in found), found
    assert all(problem.startswith(f"{tmp_path}/rules.yaml:") for problem in found)


@pytest.mark.parametrize("match", [
    "service.actual.restarts > `3`",  # observers add fields
    "service.desired.\\\"x-owner\\\" == 'alice'",
    "service.desired.labels.tier == 'app'",
    ("attach(dependencies, {limit: params.count})[?host.actual.status == 'offline' || "
    "age_seconds(host.actual.last_seen) > limit]"),
    "max_by(deployments, &started_at).status == 'failed'",
    "length(incidents[*].id) > params.count",
    "service.actual.exit_code != `0` && service.actual.restarts > params.count",
    "to_number(service.actual.lag_bytes) > `5`",
])
def test_lint_accepts(tmp_path: Path, match: str) -> None:
    assert lint_rule(tmp_path, match) == []


def test_node_rules_see_the_node_document(tmp_path: Path) -> None:
    assert lint_rule(tmp_path, "node.actual.status == 'offline'", kind="node") == []
    found = lint_rule(tmp_path, "service.id == 'x'", kind="node")
    assert "service is not in the node document" in found[0]


def test_always_overruled_rule_is_reported(tmp_path: Path) -> None:
    extra = "    overrules: {subjects: self}\n" + RULE.format(id="later", match="`true`")
    found = lint_rule(tmp_path, "`true`", extra)
    assert any("rule 'later': can never produce a recommendation: rule 'r' always fires" in p
               for p in found)


def shape_covers(value: Any, shape: Any, path: str) -> list[str]:
    """Paths of `value` that `shape` does not describe."""
    if shape is None or value is None:
        return []
    if shape == NUMBER:
        return [] if is_number(value) else [path]
    if shape == LEAF:
        return [] if not isinstance(value, dict | list) and not is_number(value) else [path]
    if isinstance(shape, list):
        return [p for item in value for p in shape_covers(item, shape[0], path + "[]")]
    missing = []
    for key, item in value.items():
        if key in shape:
            missing += shape_covers(item, shape[key], f"{path}.{key}")
        elif not (OBSERVED in shape or "*" in shape or (X_KEYS in shape and key.startswith("x-"))):
            missing.append(f"{path}.{key}")
    return missing


def test_shapes_describe_the_real_documents() -> None:
    homelab = FIXTURES / "homelab"
    loaded = load(Inputs(inventory=homelab / "hosts", world=homelab / "world"))
    for kind, subjects in loaded.state.subjects.items():
        for subject in subjects:
            document = loaded.state.document(subject)
            document.pop("params")
            assert shape_covers(document, DOCUMENTS[kind], kind) == [], subject


def test_validate_strict(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n" + RULE.format(
        id="typo", match="service.actaul.status == 'ok'"))
    runner = CliRunner()
    loose = runner.invoke(app, ["validate", str(FIXTURES / "homelab"), "--rules", str(tmp_path)])
    assert loose.exit_code == 0
    strict = runner.invoke(app, ["validate", str(FIXTURES / "homelab"), "--rules", str(tmp_path),
                                 "--strict"])
    assert strict.exit_code == 2
    assert "rule 'typo': service.actaul is not in the service document" in strict.stderr


def test_validate_strict_reports_the_typo_before_the_failure_it_causes(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("rules:\n" + RULE.format(
        id="latest", match="ends_with(service.desired.imag, ':latest')"))
    strict = CliRunner().invoke(app, ["validate", str(FIXTURES / "homelab"), "--rules",
                                      str(tmp_path), "--strict"])
    assert strict.exit_code == 2
    lines = strict.stderr.splitlines()
    assert lines[0] == (f"{tmp_path}/rules.yaml:5:12: rules[0].match: rule 'latest': "
                        "service.desired.imag is not in the service document "
                        "(did you mean 'image'?)")
    assert lines[1].startswith(f"{tmp_path}/rules.yaml:5:12: rules[0].match: rule 'latest': "
                               "failed on service ")
    assert lines[2] == "supervisor: 2 problems found"
