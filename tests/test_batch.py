"""The batch evaluation of a matcher over many subjects (supervisor/batch.py) must give, for
every subject it settles, what the per-document closure gives; the rest it leaves to it."""

from __future__ import annotations

from typing import Any

import jmespath
import pytest
from jmespath import functions
from test_compiler import DOCUMENTS, EXPRESSIONS, MatcherFunctions, outcome, same

from supervisor.batch import DEFER, Table, compile_batch
from supervisor.compiler import compile_ast

SHARED_PARAMS = {"node_heartbeat_seconds": 300, "deployment_window_seconds": 86400}
MORE = [
    "params.node_heartbeat_seconds > `100` && service.desired != null",
    "service.actual.restarts >= params.node_heartbeat_seconds || !service.desired",
    "abs(service.actual.restarts) > `5`",
    "length(incidents) > `0` && service.id == 'n1/api'",
    "`true` == `true` && service.actual.status == `null`",
]


def table_of(documents: list[Any], params: Any) -> Table:
    keys = sorted({key for document in documents if isinstance(document, dict)
                   for key in document})
    fields = {key: (lambda document, key=key: document.get(key)) for key in keys}
    table = Table(documents, fields)
    table.params = params
    return table


def check(expression: str, documents: list[Any], params: Any) -> list[Any]:
    table_functions = MatcherFunctions()
    ast = jmespath.compile(expression).parsed
    closure = compile_ast(ast, table_functions)
    values = compile_batch(ast, table_functions)(table_of(documents, params))
    assert len(values) == len(documents)
    for document, value in zip(documents, values, strict=True):
        if value is DEFER:
            continue
        kind, expected = outcome(lambda document=document: closure(document))
        assert kind == "value" and same(value, expected), (expression, document)
    return values


@pytest.mark.parametrize("expression", EXPRESSIONS + MORE)
def test_settled_subjects_get_the_closure_s_value(expression: str) -> None:
    # All documents at once (so that `&&` and `||` narrow the rows), with one rule's params.
    check(expression, [{**document, "params": SHARED_PARAMS} for document in DOCUMENTS.values()],
          SHARED_PARAMS)
    # And each alone, with its own params (or none).
    for document in DOCUMENTS.values():
        check(expression, [document], document.get("params"))


def test_plain_tests_are_settled_in_the_batch() -> None:
    documents = [{**document, "params": SHARED_PARAMS} for document in DOCUMENTS.values()]
    for expression in ("service.desired != null && service.actual == null",
                       "service.desired == null && service.actual != null",
                       "incidents[?status != 'resolved']",
                       "!(service.actual.restarts == `0`) || !incidents",
                       MORE[0]):
        values = check(expression, documents, SHARED_PARAMS)
        assert [value for value in values if value is DEFER] == [] or expression.startswith(
            "incidents"), expression
    # A filter over a non-empty list is the closure's work (its budget counts it).
    values = check("incidents[?status != 'resolved']", documents, SHARED_PARAMS)
    assert values[0] == [] and values[1] is DEFER


def test_a_function_that_fails_is_deferred() -> None:
    values = check("to_number(service.actual.status) > `1` || abs(service.actual.status) > `1`",
                   [{"service": {"actual": {"status": "x"}}}], None)
    assert values == [DEFER]


def test_a_call_repeated_by_another_rule_is_made_once_and_charged_again() -> None:
    """The second rule asking for the same call on the same rows gets the first's values, and
    each of its subjects is charged the same steps again, as its own closure would spend."""
    calls: list[Any] = []

    class Counting(MatcherFunctions):
        @functions.signature({"types": ["array"]}, {"types": ["number"]})
        def _func_count_above(self, items: list[Any], limit: float) -> int:
            calls.append(items)
            return sum(1 for item in items if isinstance(item, int) and item > limit)

    table_functions = Counting()
    documents = [{"service": {"desired": {}, "actual": {"ports": ports}}}
                 for ports in ([], [80], [80, 443, 8080], None)]
    table = table_of(documents, {"limit": 100})
    expression = "service.desired != null && count_above(service.actual.ports, params.limit)"
    first = compile_batch(jmespath.compile(expression + " > `0`").parsed, table_functions)
    second = compile_batch(jmespath.compile(expression + " >= `3`").parsed, table_functions)
    assert first(table) == [False, False, True, DEFER]
    assert table.charges == {1: 1, 2: 3} and len(calls) == 3  # None is not an array: deferred
    assert second(table) == [False, False, False, DEFER]
    assert table.charges == {1: 2, 2: 6} and len(calls) == 3
    table.params = {"limit": 8000}  # another rule's params: another call
    assert first(table) == [False, False, True, DEFER] and len(calls) == 6
