"""`supervisor validate --strict`: rules that load but cannot do what their author meant.

- a path that does not exist in the merged document (`service.actaul.status`), with a
  did-you-mean; in the observer's open records, only a near miss of a known field is flagged;
- a param the rule does not have, or a threshold param that is not a number where a number is
  compared or passed;
- an ordering comparison (`<`, `<=`, `>`, `>=`) that can meet something other than a number:
  JMESPath orders numbers only, anything else gives null, so the clause silently does not hold;
- a rule that can never produce a recommendation: its matcher is a falsy literal, or a rule
  whose matcher is always true overrules everything it could say.

The document shapes below are the rules' API as docs/rules.md describes it; a test checks them
against real documents so that the two cannot drift apart.
"""

from __future__ import annotations

import difflib
from typing import Any

from supervisor.clauses import unparse
from supervisor.compiler import is_number, truthy
from supervisor.errors import Problem
from supervisor.model import Rule, RuleSet

Shape = Any  # dict (an object), list of one shape (a list), a leaf, or None (anything)
LEAF = "value"  # a value that is not an object, a list or a number: a string, a boolean
NUMBER = "number"  # a number (or null, where the record or field is absent)
LEAVES = (LEAF, NUMBER)
OBSERVED = "*observed"  # an object the observer writes: the known keys, and any others
X_KEYS = "x-*"  # the inventory's own extensions: any key starting with x-
ANY_KEY = "*"

_LABELS = {ANY_KEY: LEAF}
_SERVICE_DESIRED = {"critical": LEAF, "one_shot": LEAF, "depends_on": [LEAF], "image": LEAF,
                    "version": LEAF, "labels": _LABELS, X_KEYS: None}
_NODE_DESIRED = {"critical": LEAF, "labels": _LABELS, X_KEYS: None}
# The observer fields the world schema types (schemas/world.schema.json); others may be anything.
_SERVICE_ACTUAL = {"status": LEAF, "since": LEAF, "version": LEAF, "image": LEAF,
                   "health": LEAF, "restarts": NUMBER, "exit_code": NUMBER, OBSERVED: None}
_NODE_ACTUAL = {"status": LEAF, "last_seen": LEAF, OBSERVED: None}
NODE = {"name": LEAF, "desired": _NODE_DESIRED, "actual": _NODE_ACTUAL}
SERVICE = {"id": LEAF, "node": LEAF, "name": LEAF, "desired": _SERVICE_DESIRED,
           "actual": _SERVICE_ACTUAL}
_DEPLOYMENT = {"id": LEAF, "service": LEAF, "status": LEAF, "started_at": LEAF,
               "finished_at": LEAF, OBSERVED: None}
_INCIDENT = {"id": LEAF, "subject": LEAF, "status": LEAF, "severity": LEAF, "opened_at": LEAF,
             "title": LEAF, OBSERVED: None}
_REMEDIATION = {"id": LEAF, "status": LEAF, "started_at": LEAF, "finished_at": LEAF,
                "policy": LEAF, "executor": LEAF, "action": LEAF, "condition": LEAF,
                "fingerprint": LEAF, "detail": LEAF}
_COMMON = {"now": LEAF, "subject": {"kind": LEAF, "id": LEAF},
           "world": {"observed_at": LEAF, "observer": None}}
DOCUMENTS: dict[str, dict[str, Shape]] = {
    "service": {**_COMMON, "service": SERVICE, "node": NODE,
                "dependencies": [{**SERVICE, "host": NODE}], "deployments": [_DEPLOYMENT],
                "incidents": [_INCIDENT], "remediations": [_REMEDIATION]},
    "node": {**_COMMON, "node": NODE, "services": [SERVICE], "incidents": [_INCIDENT],
             "remediations": [_REMEDIATION]},
    "world": dict(_COMMON),
}
_ORDERING = {"lt", "lte", "gt", "gte"}
_NUMERIC_ARGUMENTS = {"failed_streak": {1}, "duration": {0}, "abs": {0}, "ceil": {0},
                      "floor": {0}}
# Functions whose result is a number (or null): a comparison with them needs no warning.
_NUMERIC_RESULTS = {"abs", "avg", "ceil", "floor", "length", "sum", "to_number", "age_seconds",
                    "ahead_seconds", "failed_streak"}
_OPERATORS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


def lint(rules: RuleSet) -> list[Problem]:
    problems: list[Problem] = []
    for rule in rules.rules:
        if not rule.enabled:
            continue
        checker = _Checker(rule, problems)
        params = {name: NUMBER if is_number(value) else LEAF
                  for name, value in rule.params.items()}
        shape = {**DOCUMENTS[rule.kind], "params": params}
        checker.check(rule.ast, shape, "match")
        for ast in rule.reason.expressions if rule.reason else ():
            checker.check(ast, shape, "reason")
        if rule.ast["type"] == "literal" and not truthy(rule.ast["value"]):
            problems.append(rule.problem("match", "can never fire: the matcher is always "
                                          f"{rule.ast['value']!r}"))
    problems.extend(_always_overruled(rules))
    return sorted(set(problems))


class _Checker:
    def __init__(self, rule: Rule, problems: list[Problem]) -> None:
        self.rule, self.problems = rule, problems
        self.elements: list[str] = []  # the lists whose elements are being looked into
        self.in_filters = 0  # how many filter conditions enclose the node being checked
        self.nesting_reported = False

    def report(self, key: str, message: str) -> None:
        self.problems.append(self.rule.problem(key, message))

    def check(self, node: dict[str, Any], shape: Shape, key: str, path: str = "") -> Shape:
        """The shape of `node`'s value when evaluated against a value of `shape`."""
        kind, children = node["type"], node.get("children", [])
        if kind == "field":
            return self.field(node["value"], shape, key, path)
        if kind == "subexpression":
            for child in children:
                shape = self.check(child, shape, key, path)
                path = _extend(path, child)
            return shape
        if kind in ("index_expression", "flatten"):
            inner = self.check(children[0], shape, key, path)
            return inner if kind == "flatten" or not isinstance(inner, list) else inner[0]
        if kind in ("projection", "filter_projection"):
            left = self.check(children[0], shape, key, path)
            element = left[0] if isinstance(left, list) else None
            self.nested(key)
            self.elements.append(_extend(path, children[0]) or "the list")
            try:
                if kind == "filter_projection":
                    self.in_filters += 1
                    try:
                        self.check(children[2], element, key)
                    finally:
                        self.in_filters -= 1
                return [self.check(children[1], element, key)]
            finally:
                self.elements.pop()
        if kind == "comparator":
            for child in children:
                found = self.check(child, shape, key, path)
                if node["value"] in _ORDERING:
                    self.numeric_param(child, key, "compared with <, <=, > or >=")
                    self.number_operand(child, found, _OPERATORS[node["value"]], key)
            return LEAF
        if kind == "function_expression":
            return self.function(node, shape, key, path)
        if kind in ("current", "identity"):
            return shape
        if kind == "literal":
            return NUMBER if is_number(node["value"]) else LEAF
        if kind == "pipe":
            return self.check(children[1], self.check(children[0], shape, key, path), key)
        if kind == "value_projection":
            self.check(children[0], shape, key, path)
            return None
        if kind == "multi_select_dict":
            return {pair["value"]: self.check(pair["children"][0], shape, key, path)
                    for pair in children}
        for child in children:  # and, or, not, multi-select lists
            self.check(child, shape, key, path)
        return None

    def nested(self, key: str) -> None:
        """A projection inside a filter's condition, or three deep: evaluated once per element
        of each enclosing list, its work is the product of their lengths. (A chain such as
        `a[*].b[*]` walks each inner list once and is not reported.)"""
        depth = len(self.elements) + 1
        if self.nesting_reported or not (depth >= 3 or (depth == 2 and self.in_filters)):
            return
        self.nesting_reported = True
        self.report(key, f"projections nested {depth} deep: the work is the product of the "
                    "lists' lengths, unbounded as they grow; evaluation stops at the rule's "
                    "budget (SUPERVISOR_MAX_RULE_STEPS steps per subject)")

    def field(self, name: str, shape: Shape, key: str, path: str) -> Shape:
        shown = f"{path}.{name}" if path else name
        if shape is None:
            return None
        if shape in LEAVES or isinstance(shape, list):
            what = "a list (use [*] or a filter)" if isinstance(shape, list) else "not an object"
            self.report(key, f"{shown}: {path or 'the document'} is {what}, so this is always null")
            return None
        if name in shape:
            return shape[name]
        if name in ("null", "true", "false"):
            self.report(key, f"{shown}: a bare {name} is a field name in JMESPath, not a literal; "
                        f"write `{name}` in backquotes")
            return None
        known = [k for k in shape if k not in (OBSERVED, X_KEYS, ANY_KEY)]
        if (X_KEYS in shape and name.startswith("x-")) or ANY_KEY in shape:
            return shape.get(ANY_KEY)
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if OBSERVED in shape:
            if close:  # observers add fields; only a near miss of a known one is suspicious
                self.report(key, f"{shown} is not a field the observer writes "
                            f"(did you mean {close[0]!r}?)")
            return None
        if path == "params":
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.report(key, f"{shown}: the rule has no param {name!r}{hint}")
            return None
        hint = f" (did you mean {close[0]!r}?)" if close else _one_level_down(shape, name, path)
        if self.elements and not path:
            self.report(key, f"{shown} is not in an element of {self.elements[-1]}{hint}: inside "
                        "a filter or projection, names refer to the element (attach() brings "
                        "in a value from outside)")
        else:
            self.report(key, f"{shown} is not in the {self.rule.kind} document{hint}")
        return None

    def function(self, node: dict[str, Any], shape: Shape, key: str, path: str) -> Shape:
        children = node["children"]
        first: Shape = None
        for position, child in enumerate(children):
            if child["type"] == "expref":
                element = first[0] if isinstance(first, list) else None
                self.check(child["children"][0], element, key)
                continue
            result = self.check(child, shape, key, path)
            if position == 0:
                first = result
            elif node["value"] == "attach" and isinstance(first, list) and isinstance(result, dict):
                element = first[0] if isinstance(first[0], dict) else {}
                first = [{**element, **result}]
            if position in _NUMERIC_ARGUMENTS.get(node["value"], ()):
                self.numeric_param(child, key, f"passed to {node['value']}() as a number")
        if node["value"] == "attach":
            return first
        return NUMBER if node["value"] in _NUMERIC_RESULTS else None

    def number_operand(self, node: dict[str, Any], shape: Shape, operator: str,
                       key: str) -> None:
        """JMESPath orders numbers only: anything else makes the comparison null."""
        chain = _field_chain(node)
        if shape == NUMBER or (chain[:1] == ["params"] and len(chain) == 2):
            return  # numbers, or a param: numeric_param has its say on those
        text = unparse(node)
        if node["type"] == "literal" or shape == LEAF or isinstance(shape, dict | list):
            self.report(key, f"{text} is not a number, so '{operator}' on it is always null "
                        "(JMESPath orders numbers only): the clause can never hold")
        else:
            self.report(key, f"{text} may not be a number: where it is not, '{operator}' gives "
                        "null and the clause does not hold (JMESPath orders numbers only; "
                        "to_number() converts a numeric string)")

    def numeric_param(self, node: dict[str, Any], key: str, use: str) -> None:
        chain = _field_chain(node)
        if len(chain) != 2 or chain[0] != "params" or chain[1] not in self.rule.params:
            return
        value = self.rule.params[chain[1]]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.report(key, f"param {chain[1]} is {type(value).__name__} {value!r}, but it is "
                        f"{use}: write it as a number")


def _one_level_down(shape: dict[str, Shape], name: str, path: str) -> str:
    """`service.status` is `service.actual.status`: a name one object further down."""
    found = [f"{path}.{key}.{name}" if path else f"{key}.{name}"
             for key, inner in shape.items() if isinstance(inner, dict) and name in inner]
    return f" (did you mean {' or '.join(found)}?)" if found else ""


def _field_chain(node: dict[str, Any]) -> list[str]:
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] == "subexpression" and all(c["type"] == "field" for c in node["children"]):
        return [child["value"] for child in node["children"]]
    return []


def _extend(path: str, node: dict[str, Any]) -> str:
    chain = _field_chain(node)
    if not chain:
        return path
    return ".".join([path, *chain]) if path else ".".join(chain)


def _always_overruled(rules: RuleSet) -> list[Problem]:
    """Rules whose every recommendation a rule that always fires would withdraw."""
    problems = []
    always = [rule for rule in rules.rules if rule.enabled and rule.overrules is not None
              and rule.ast["type"] == "literal" and truthy(rule.ast["value"])]
    for rule in rules.rules:
        if not rule.enabled:
            continue
        for cause in always:
            scope = cause.overrules.scope if cause.overrules else ""
            reaches = (scope == "all" or (scope == "self" and cause.kind == rule.kind)
                       or (scope == "hosted_services" and rule.kind == "service"))
            if (cause is not rule and reaches and cause.overrules is not None
                    and cause.overrules.covers(rule.action, rule.condition)):
                problems.append(rule.problem(
                    "match", f"can never produce a recommendation: rule {cause.id!r} always "
                    "fires and overrules it"))
                break
    return problems
