"""The reference evaluator: jmespath's own interpreter, held to the JMESPath specification.

jmespath.py departs from the specification in one place rules meet: its ordering comparisons
(`<`, `<=`, `>`, `>=`) also compare two strings, and raise TypeError on a number against a
string. The specification says an ordering comparison of anything but two numbers is null, so
one odd observer field (`"restarts": "6"`) makes a rule not match instead of failing the whole
evaluation. The compiled matchers (compiler.py) follow the same rule; the tests hold them to
this interpreter and to the specification's compliance suite.
"""

from __future__ import annotations

from typing import Any

from jmespath.functions import Functions
from jmespath.visitor import Options, TreeInterpreter

from supervisor.compiler import is_number

_ORDERING = frozenset({"lt", "lte", "gt", "gte"})


class SpecInterpreter(TreeInterpreter):  # type: ignore[misc] # jmespath is untyped
    def visit_comparator(self, node: dict[str, Any], value: Any) -> Any:
        if node["value"] not in _ORDERING:
            return super().visit_comparator(node, value)
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        if not (is_number(left) and is_number(right)):
            return None
        return self.COMPARATOR_FUNC[node["value"]](left, right)


def interpreter(functions: Functions | None = None) -> SpecInterpreter:
    return SpecInterpreter(Options(custom_functions=functions))


def search(expression: str, document: Any, functions: Functions | None = None) -> Any:
    """`jmespath.search`, with the specification's ordering comparisons."""
    import jmespath

    return interpreter(functions).visit(jmespath.compile(expression).parsed, document)
