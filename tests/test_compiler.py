"""The compiled matchers must be indistinguishable from the reference interpreter.

Two sources of truth: the JMESPath specification's compliance suite (expected results and error
kinds, carried in tests/compliance/), and the reference interpreter (jmespath's
TreeInterpreter held to the specification's ordering comparisons, supervisor/reference.py) on
rule-style expressions, with a custom function table, over documents shaped like the engine's
subjects.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import jmespath
import pytest
from jmespath import exceptions, functions
from support.compliance import groups

from supervisor import reference
from supervisor.compiler import compile_ast
from supervisor.functions import RuleFunctions

# The suite's error kinds and the jmespath exception each must raise. jmespath raises a plain
# ValueError for a zero slice step ("invalid-value"), and spells the variadic arity error
# VariadictArityError (a subclass of ArityError).
ERRORS: dict[str, type[Exception]] = {
    "syntax": exceptions.ParseError,
    "invalid-type": exceptions.JMESPathTypeError,
    "invalid-arity": exceptions.ArityError,
    "unknown-function": exceptions.UnknownFunctionError,
    "invalid-value": ValueError,
}


def same(left: Any, right: Any) -> bool:
    """Equal and of the same JSON types all the way down: `1 == 1.0 == True` to Python, but a
    matcher returning the wrong one of them is a bug."""
    if type(left) is not type(right):
        return False
    if isinstance(left, list):
        return len(left) == len(right) and all(map(same, left, right))
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(same(v, right[k]) for k, v in left.items())
    return bool(left == right)


def outcome(evaluate: Callable[[], Any]) -> tuple[str, Any]:
    """("value", result) or ("raised", exception class), so both kinds of outcome compare."""
    try:
        return "value", evaluate()
    except (ValueError, TypeError) as error:  # JMESPathError is a ValueError
        return "raised", type(error)


def compliance_cases() -> list[Any]:
    params = []
    counters: dict[str, int] = {}
    for stem, group in groups():
        for case in group["cases"]:
            index = counters[stem] = counters.get(stem, -1) + 1
            params.append(pytest.param(
                group["given"], case, id=f"{stem}#{index}: {case['expression']}"))
    return params


CASES = compliance_cases()


def test_compliance_suite_has_cases() -> None:
    kinds = [next(k for k in ("result", "error", "bench") if k in p.values[1]) for p in CASES]
    assert kinds.count("result") >= 742  # the README's count for the reference package
    assert kinds.count("error") > 0 and kinds.count("bench") > 0


# The reference lexer warns, then carries on, when it meets the deprecated `foo` literal syntax
# (once per expression, as it caches parses); that is its behaviour, not the compiler's.
@pytest.mark.filterwarnings("ignore:deprecated string literal syntax:PendingDeprecationWarning")
@pytest.mark.parametrize(("given", "case"), CASES)
def test_compliance(given: Any, case: dict[str, Any]) -> None:
    expression = case["expression"]
    table = functions.Functions()

    def compiled() -> Any:
        return compile_ast(jmespath.compile(expression).parsed, table)(given)

    ours = outcome(compiled)
    interpreted = outcome(lambda: reference.search(expression, given))
    if "error" in case:
        assert ours[0] == "raised", f"expected {case['error']}, got {ours[1]!r}"
        assert issubclass(ours[1], ERRORS[case["error"]])
        assert ours[1] is interpreted[1]
        return
    assert ours[0] == "value", f"raised {ours[1]}"
    assert same(ours[1], interpreted[1])
    if "result" in case:
        assert same(ours[1], case["result"])
        assert same(interpreted[1], case["result"])


class MatcherFunctions(functions.Functions):
    """The standard functions and one of ours, which takes an expression reference as
    sort_by does, so that the `&expr` protocol is exercised through a custom function."""

    @functions.signature({"types": ["array"]}, {"types": ["expref"]})
    def _func_count_where(self, items: list[Any], expref: Any) -> int:
        return sum(1 for item in items if expref.visit(expref.expression, item) is True)


def node(status: Any, last_seen: str | None = "2024-05-01T11:58:00Z") -> dict[str, Any]:
    return {"name": "n1", "desired": {"role": "worker"},
            "actual": None if status is None else {"status": status, "last_seen": last_seen}}


def service(ident: str, desired: Any, status: Any, **extra: Any) -> dict[str, Any]:
    actual = None if status is None else {"status": status, **extra}
    return {"id": ident, "node": "n1", "name": ident.split("/")[-1], "desired": desired,
            "actual": actual}


DOCUMENTS: dict[str, Any] = {
    "healthy": {
        "service": service("n1/web", {"image": "web:1", "depends_on": ["n1/db"]}, "ok",
                           restarts=0, ports=[80, 443]),
        "node": node("online"),
        "dependencies": [{**service("n1/db", {"image": "db:1"}, "ok"), "node": node("online")}],
        "deployments": [{"status": "succeeded", "finished_at": "2024-05-01T10:00:00Z"}],
        "incidents": [],
        "params": {"node_heartbeat_seconds": 300, "deployment_window_seconds": 86400},
    },
    "degraded": {
        "service": service("n1/api", {"image": "api:2", "depends_on": ["n1/db", "n2/cache"]},
                           "degraded", restarts=7, ports=[8080],
                           tags=["edge", None, "beta", None]),
        "node": node("online"),
        "dependencies": [
            {**service("n1/db", {"image": "db:1"}, None), "node": node("online")},
            {**service("n2/cache", {"image": "cache:1"}, "ok"),
             "node": node("offline", "2024-05-01T09:00:00Z")},
        ],
        "deployments": [{"status": "failed", "finished_at": "2024-05-01T11:00:00Z"},
                        {"status": "failed", "started_at": "2024-05-01T11:30:00Z"}],
        "incidents": [{"id": "INC-1", "status": "open", "severity": 2},
                      {"id": "INC-2", "status": "resolved", "severity": 1},
                      {"id": "INC-3", "status": "acknowledged", "severity": 0}],
        "params": {"node_heartbeat_seconds": 300, "deployment_window_seconds": 86400},
    },
    "unmanaged": {
        "service": service("n2/tmp", None, "ok", restarts=True),
        "node": node(None),
        "dependencies": [],
        "deployments": [],
        "incidents": [{"id": "INC-9", "status": "open"}, {"id": 10}],
        "params": {},
    },
    # Wrong types everywhere, to compare how both evaluators fail or fall through.
    "odd": {
        "service": {"id": 1, "desired": 0, "actual": {"status": 1, "restarts": "many",
                                                        "ports": "80"}},
        "node": [],
        "dependencies": {"n1/db": {"actual": None}},
        "incidents": "none",
        "params": None,
    },
    "empty": {},
}

EXPRESSIONS = [
    "service.desired != null && (service.actual == null || service.actual.status != 'ok')",
    "length(dependencies[?actual == null || node.actual.status == 'offline']) > `0`",
    "incidents[?status != 'resolved'].id",
    "incidents[?status != 'resolved']",
    "service.desired != null && service.actual == null",
    "service.desired == null && service.actual != null",
    "service.desired != null && service.actual != null && service.actual.status != 'ok'",
    ("dependencies[?actual == null || actual.status != 'ok' || node.actual == null"
     " || node.actual.status == 'offline'].id"),
    "service.actual.status || 'missing'",
    "node.actual.last_seen || 'never'",
    "!service.actual",
    "!(service.desired)",
    "!(service.actual.restarts)",
    "!(service.actual.restarts == `0`) || !incidents",
    "incidents && service.id",
    "service.actual.ports || incidents[0]",
    "dependencies[?actual].id",
    "deployments[?!finished_at].status",
    "`null` == service.desired || service.actual.status != `true`",
    "service.actual.restarts != `1`",
    "service.actual.ports[*] | [?@ > `100`]",
    "dependencies[].node.actual.status[]",
    "[incidents, dependencies][][].id",
    "map(&id, incidents)",
    "service.actual.tags[*]",
    "service.actual.tags[?@ != 'edge']",
    "!!incidents",
    "service.actual.restarts > `5`",
    "`5` <= service.actual.restarts",
    "service.actual.restarts == `0`",
    "service.actual.restarts == `false`",
    "service.desired == `0`",
    "service.actual.status == `1`",
    "service.actual.status < 'p'",
    "service.actual.ports[0]",
    "service.actual.ports[-1:]",
    "contains(service.actual.ports, `443`)",
    "service.desired.depends_on[?starts_with(@, 'n1/')]",
    "max_by(incidents, &severity).id",
    "sort_by(incidents[?severity != null], &severity)[*].id",
    "count_where(incidents, &(status == 'open'))",
    "count_where(dependencies, &(actual.status == 'ok')) == length(dependencies)",
    "dependencies[*].node.actual.status",
    "dependencies[].{id: id, up: actual != null}",
    "[service.id, node.name, length(incidents)]",
    "*.actual.status",
    "deployments[?status == 'failed'] | length(@)",
    "service.actual.{status: status, count: restarts} | status",
    "to_number(service.actual.restarts) >= `3` && service.actual.status != 'ok'",
    "length(service.actual.status) > `2`",
    "abs(service.actual.restarts)",
    "missing_function(service)",
    "length(incidents, service)",
    "not_null()",
    "incidents[?`true`] | [0].id",
    "params.node_heartbeat_seconds",
]


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_matches_the_reference_interpreter(expression: str, name: str) -> None:
    table = MatcherFunctions()
    document = DOCUMENTS[name]
    matcher = compile_ast(jmespath.compile(expression).parsed, table)
    ours = outcome(lambda: matcher(document))
    interpreted = outcome(lambda: reference.search(expression, document, table))
    assert ours[0] == interpreted[0], (ours, interpreted)
    assert ours[1] is interpreted[1] if ours[0] == "raised" else same(ours[1], interpreted[1])


# The specification: "Ordering operators are only valid for numbers. Evaluating any other type
# with a comparison operator will yield a null value."
ORDERING_OF_NON_NUMBERS = [
    ("restarts > `5`", {"restarts": "6"}),  # jmespath.py: TypeError
    ("`5` <= restarts", {"restarts": "6"}),  # the literal on the left
    ("restarts >= limit", {"restarts": "6", "limit": 5}),  # neither side a literal
    ("status < 'p'", {"status": "ok"}),  # jmespath.py: true (it orders strings)
    ("a < b", {"a": "x", "b": "y"}),
    ("a > b", {"a": True, "b": 0}),
    ("a < b", {"a": [1], "b": [2]}),
    ("a < `2`", {"a": None}),
    ("a < `\"z\"`", {"a": 1}),  # a JSON string literal
]


@pytest.mark.parametrize(("expression", "document"), ORDERING_OF_NON_NUMBERS)
def test_ordering_anything_but_two_numbers_is_null(expression: str, document: Any) -> None:
    compiled = compile_ast(jmespath.compile(expression).parsed, functions.Functions())
    assert compiled(document) is None
    assert reference.search(expression, document) is None


def test_ordering_numbers_still_orders() -> None:
    for expression, want in (("a < b", True), ("a >= b", False), ("b > `1.5`", True),
                             ("`3` > a", True), ("a <= `1`", True)):
        compiled = compile_ast(jmespath.compile(expression).parsed, functions.Functions())
        assert compiled({"a": 1, "b": 2.5}) is want, expression
        assert reference.search(expression, {"a": 1, "b": 2.5}) is want, expression


def test_rule_functions_work_unchanged() -> None:
    """The engine's own function table, bound to an evaluation time."""
    table = RuleFunctions(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    expression = ("node.desired != null && (node.actual == null || node.actual.status == "
                  "'offline' || age_seconds(node.actual.last_seen) > params.node_heartbeat_seconds)")
    matcher = compile_ast(jmespath.compile(expression).parsed, table)
    stale = {**DOCUMENTS["healthy"], "node": node("online", "2024-05-01T11:00:00Z")}
    for document in (DOCUMENTS["healthy"], DOCUMENTS["unmanaged"], stale):
        assert matcher(document) == reference.search(expression, document, table)
    assert matcher(stale) is True and matcher(DOCUMENTS["healthy"]) is False


def test_compiled_once_evaluated_many_times() -> None:
    """A closure holds no per-evaluation state: reuse across documents gives the same answers."""
    matcher = compile_ast(jmespath.compile(EXPRESSIONS[0]).parsed, MatcherFunctions())
    expected = [matcher(document) for document in DOCUMENTS.values()]
    assert [matcher(document) for document in DOCUMENTS.values()] == expected
    assert expected == [False, True, False, True, False]
