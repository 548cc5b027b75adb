from __future__ import annotations

import warnings
from typing import Any

import jmespath
import pytest
from support.compliance import groups
from support.scenarios import ROOT

from supervisor.clauses import breakdown, show, unparse
from supervisor.functions import RuleFunctions
from supervisor.timestamps import parse_time

FUNCTIONS = RuleFunctions(parse_time("2026-11-26T10:00:00Z"))


def compliance_expressions() -> list[str]:
    return [case["expression"] for _, group in groups() for case in group["cases"]]


def parsed(text: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jmespath warns about a deprecated literal syntax
        return jmespath.compile(text).parsed


def test_unparse_round_trips_every_compliance_expression() -> None:
    checked = 0
    for text in compliance_expressions():
        try:
            ast = parsed(text)
        except jmespath.exceptions.JMESPathError:
            continue
        assert parsed(unparse(ast)) == ast, text
        checked += 1
    assert checked > 700


@pytest.mark.parametrize(("text", "shown"), [
    ("a && b || !c", "a && b || !c"),
    ("(a || b) && c", "(a || b) && c"),
    ("!(a == b)", "!(a == b)"),
    ("a[?b == 'x'].c", "a[?b == 'x'].c"),
    ("length(a[*].b) > `2`", "length(a[*].b) > `2`"),
    ("a.\"my key\"", "a.\"my key\""),
])
def test_unparse_reads_like_the_source(text: str, shown: str) -> None:
    assert unparse(parsed(text)) == shown


def test_breakdown_of_and_or_not_with_values() -> None:
    document = {"service": {"actual": {"status": "failed"}, "desired": {"critical": True}}}
    clause = breakdown(parsed("service.desired != `null` && (service.actual == `null` || "
                              "service.actual.status != 'ok') && !(service.desired.critical)"),
                       document, FUNCTIONS)
    assert clause.kind == "and" and clause.value is False
    first, either, negation = clause.clauses
    assert (first.text, first.value, first.detail) == (
        "service.desired != `null`", True, '{"critical": true} != null')
    assert either.kind == "or" and either.value is True
    assert [(c.detail, c.value) for c in either.clauses] == [
        ('{"status": "failed"} == null', False), ("'failed' != 'ok'", True)]
    assert negation.kind == "not" and negation.value is False
    assert negation.clauses[0].value is True


def test_short_circuit_marks_clauses_not_evaluated() -> None:
    clause = breakdown(parsed("a && b.c && d"), {"a": None}, FUNCTIONS)
    assert [(c.text, c.evaluated) for c in clause.clauses] == [
        ("a", True), ("b.c", False), ("d", False)]
    assert clause.to_json()["clauses"][1] == {"expression": "b.c", "evaluated": False,
                                               "kind": "value"}


def test_functions_show_their_arguments_and_result() -> None:
    clause = breakdown(parsed("age_seconds(t) > `300`"), {"t": "2026-11-26T09:50:00Z"},
                       FUNCTIONS)
    assert (clause.detail, clause.value) == ("600 > 300", True)
    (call,) = clause.clauses
    assert (call.kind, call.detail, call.value) == (
        "call", "age_seconds('2026-11-26T09:50:00Z')", 600)


def test_show() -> None:
    assert show("it's") == "'it\\'s'"
    assert show(None) == "null"
    assert show({"a": 1}) == '{"a": 1}'
    assert show({str(i): i for i in range(20)}) == "{…20 keys}"
    assert show(list(range(30))) == "[…30 items]"
    assert show("x" * 100).endswith("…")


def test_rule_files_unparse_to_equivalent_matchers() -> None:
    import yaml

    for path in (ROOT / "rules").glob("*.yaml"):
        for rule in yaml.safe_load(path.read_text())["rules"]:
            assert parsed(unparse(parsed(rule["match"]))) == parsed(rule["match"])
