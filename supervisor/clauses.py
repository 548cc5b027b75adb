"""Clause-level breakdown of a matcher, computed generically from its JMESPath AST.

`explain` shows, for every `&&`, `||` and `!` branch, every comparison and every function call
at the top of a matcher, the text of the clause, the values it saw and its result. Values come
from the same compiled closures the engine evaluates with, so the breakdown cannot disagree with
the verdict. Inside filters and projections the clause is shown whole, with its value: their
per-element detail would drown the reader.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jmespath.functions import Functions

from supervisor.compiler import AstNode, compile_ast, truthy
from supervisor.terminal import printable

_OPERATORS = {"eq": "==", "ne": "!=", "lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Binding strength, loosest first: a child that binds more loosely than its parent needs parens.
_STRENGTH = {"pipe": 0, "or_expression": 1, "and_expression": 2, "comparator": 3,
             "not_expression": 4}


@dataclass
class Clause:
    text: str  # the sub-expression, as JMESPath
    value: Any = None
    detail: str = ""  # the values the clause saw: `'failed' != 'ok'`, `age_seconds('…')`
    evaluated: bool = True  # false for the right side of a short-circuited && or ||
    kind: str = "value"  # and, or, not (made of clauses), compare, call, or a plain value
    clauses: list[Clause] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"expression": self.text, "evaluated": self.evaluated}
        if self.evaluated:
            document["value"] = self.value
        if self.detail:
            document["detail"] = self.detail
        document["kind"] = self.kind
        if self.clauses:
            document["clauses"] = [clause.to_json() for clause in self.clauses]
        return document


def breakdown(ast: AstNode, document: Any, functions: Functions) -> Clause:
    """The clause tree of `ast` evaluated against `document`."""
    return _Tracer(functions).trace(ast, document)


class _Tracer:
    def __init__(self, functions: Functions) -> None:
        self.functions = functions

    def value(self, node: AstNode, document: Any) -> Any:
        return compile_ast(node, self.functions)(document)

    def trace(self, node: AstNode, document: Any) -> Clause:
        kind = node["type"]
        text = unparse(node)
        if kind in ("and_expression", "or_expression"):
            # `a && b && c` is one clause of three operands, not a nest of pairs.
            clauses: list[Clause] = []
            value: Any = None
            for operand in _operands(node, kind):
                if clauses and truthy(value) != (kind == "and_expression"):
                    clauses.append(Clause(unparse(operand), evaluated=False))
                    continue
                clauses.append(self.trace(operand, document))
                value = clauses[-1].value
            return Clause(text, value, kind=kind.split("_")[0], clauses=clauses)
        if kind == "not_expression":
            inner = self.trace(node["children"][0], document)
            return Clause(text, not truthy(inner.value), kind="not", clauses=[inner])
        if kind == "comparator":
            left, right = (self.value(child, document) for child in node["children"])
            detail = f"{show(left)} {_OPERATORS[node['value']]} {show(right)}"
            calls = [self.trace(child, document) for child in node["children"]
                     if child["type"] == "function_expression"]
            return Clause(text, self.value(node, document), detail, kind="compare", clauses=calls)
        if kind == "function_expression":
            arguments = [
                "&" + unparse(child["children"][0]) if child["type"] == "expref"
                else show(self.value(child, document))
                for child in node["children"]
            ]
            return Clause(text, self.value(node, document), f"{node['value']}({', '.join(arguments)})",
                          kind="call")
        return Clause(text, self.value(node, document))


def _operands(node: AstNode, kind: str) -> list[AstNode]:
    if node["type"] != kind:
        return [node]
    left, right = node["children"]
    return [*_operands(left, kind), *_operands(right, kind)]


def show(value: Any, limit: int = 48) -> str:
    """A value as a rule author writes it: strings quoted, others as JSON, long ones cut;
    a long object or list is only named, since its parts are what the clause is about."""
    if isinstance(value, str):
        text = "'" + printable(value.replace("'", "\\'")) + "'"
    else:
        text = printable(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))
    if len(text) <= limit:
        return text
    if isinstance(value, dict):
        return f"{{…{len(value)} keys}}"
    if isinstance(value, list):
        return f"[…{len(value)} items]"
    return text[: limit - 1] + "…"


def unparse(node: AstNode) -> str:
    """JMESPath text for an AST; it parses back to the same AST."""
    kind = node["type"]
    children = node.get("children", [])
    if kind == "field":
        return _name(node["value"])
    if kind in ("current", "identity"):
        return "@"
    if kind == "literal":
        return _literal(node["value"])
    if kind == "subexpression":
        return ".".join(unparse(child) for child in children)
    if kind == "index_expression":
        return _left(children[0]) + "".join(_bracket(child) for child in children[1:])
    if kind in ("index", "slice"):
        return _bracket(node)
    if kind == "flatten":
        return _left(children[0]) + "[]"
    if kind == "projection":
        left, right = children
        if left["type"] == "flatten" or (
            left["type"] == "index_expression" and left["children"][1]["type"] == "slice"
        ):
            return unparse(left) + _suffix(right)
        return _left(left) + "[*]" + _suffix(right)
    if kind == "value_projection":
        left = _left(children[0])
        return (left + ".*" if left else "*") + _suffix(children[1])
    if kind == "filter_projection":
        left, right, condition = children
        return f"{_left(left)}[?{unparse(condition)}]{_suffix(right)}"
    if kind == "comparator":
        left, right = children
        return f"{_wrap(left, kind)} {_OPERATORS[node['value']]} {_wrap(right, kind, True)}"
    if kind in ("and_expression", "or_expression", "pipe"):
        operator = {"and_expression": "&&", "or_expression": "||", "pipe": "|"}[kind]
        return f"{_wrap(children[0], kind)} {operator} {_wrap(children[1], kind, True)}"
    if kind == "not_expression":
        return "!" + _wrap(children[0], kind, True)
    if kind == "function_expression":
        return f"{node['value']}({', '.join(unparse(child) for child in children)})"
    if kind == "expref":
        return "&" + unparse(children[0])
    if kind == "multi_select_list":
        return "[" + ", ".join(unparse(child) for child in children) + "]"
    if kind == "multi_select_dict":
        pairs = (f"{_name(pair['value'])}: {unparse(pair['children'][0])}" for pair in children)
        return "{" + ", ".join(pairs) + "}"
    raise ValueError(f"unknown JMESPath node {kind!r}")


def _name(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else json.dumps(key)


def _literal(value: Any) -> str:
    # A raw string only escapes its quote, so backslashes need the JSON form.
    if isinstance(value, str) and "\\" not in value:
        return "'" + value.replace("'", "\\'") + "'"
    return "`" + json.dumps(value, separators=(",", ":")).replace("`", "\\`") + "`"


def _left(node: AstNode) -> str:
    """The left side of a bracket: nothing for the current node, parens where needed."""
    if node["type"] in ("identity", "current"):
        return "" if node["type"] == "identity" else "@"
    text = unparse(node)
    return f"({text})" if node["type"] in _STRENGTH else text


def _bracket(node: AstNode) -> str:
    if node["type"] == "index":
        return f"[{node['value']}]"
    start, stop, step = ("" if part is None else str(part) for part in node["children"])
    return f"[{start}:{stop}:{step}]" if step else f"[{start}:{stop}]"


def _suffix(node: AstNode) -> str:
    """What follows a projection: `.field`, `[0]`, or nothing for the identity."""
    if node["type"] == "identity":
        return ""
    text = unparse(node)
    return text if text.startswith("[") else "." + text


def _wrap(node: AstNode, parent: str, right: bool = False) -> str:
    text = unparse(node)
    mine, theirs = _STRENGTH.get(node["type"], 9), _STRENGTH[parent]
    needs = mine < theirs or (right and mine == theirs and parent != "not_expression")
    return f"({text})" if needs else text
