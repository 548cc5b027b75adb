"""Compile JMESPath ASTs into Python closures, once, for evaluation over many subjects.

jmespath's TreeInterpreter re-dispatches on every node's type (a dict lookup and a bound-method
call per node) each time it evaluates; with 100,000 subjects that dispatch dominates. Here each
node becomes one closure when the rule is loaded, so evaluation is plain nested calls, and the hot
shapes of matchers get closures of their own: field chains walk keys in one loop, comparisons
against a literal test the known literal directly, and `&&`, `||`, `!` use Python's own operators
when their operands are known to yield only true, false or null.

The closures reproduce TreeInterpreter (jmespath 1.1.0) exactly, including its quirks: 0 is true,
`1 == 1.0` but never `true == 1`, projections drop nulls, and functions go through
`Functions.call_function` so custom function tables and their errors (JMESPathTypeError,
ArityError, UnknownFunctionError, ...) behave as with `jmespath.search`. One exception, where
jmespath.py departs from the specification: an ordering comparison of anything but two numbers
is null (reference.py holds the interpreter to the same rule).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from numbers import Number
from typing import Any

from jmespath.functions import Functions

AstNode = dict[str, Any]
Fn = Callable[[Any], Any]

_ORDERING: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt, "gt": operator.gt, "lte": operator.le, "gte": operator.ge,
}
# `literal OP x` is rewritten as `x MIRROR[OP] literal` so that only one shape needs a fast path.
_MIRROR = {"eq": "eq", "ne": "ne", "lt": "gt", "gt": "lt", "lte": "gte", "gte": "lte"}
_SEQUENCES = frozenset({"subexpression", "pipe", "index_expression"})


def compile_ast(ast: AstNode, functions: Functions, budget: Budget | None = None) -> Fn:
    """A closure `f(document)` equal to `jmespath.search(text, document, options)` where `ast`
    is `jmespath.compile(text).parsed` and `options` carries `functions` as custom functions.

    Errors of a function call (unknown name, arity, argument types) are raised when the call is
    evaluated, not here, exactly as the interpreter does: a call on a branch never taken is fine.
    With a `budget`, evaluation raises `OverBudget` once it has done more work than that allows.
    """
    return _Compiler(functions, budget or Budget(UNLIMITED)).compile(ast)


UNLIMITED = 1 << 62


class OverBudget(Exception):
    """A matcher did more work than its rule's budget allows. Not a ValueError, so that no
    handler of evaluation errors takes it for a type error on one subject."""

    def __init__(self, steps: int, total: bool) -> None:
        super().__init__(steps, total)
        self.steps = steps
        self.total = total  # the rule's budget over all its subjects ran out, not one subject's


class Budget:
    """The work one rule's matcher may do. A step is an element that a projection, filter or
    flatten walks, an element of a list a function is given, or a call of an expression
    reference (`map`, `sort_by`): matchers whose work is a product of list lengths (projections
    nested over large lists) stop here instead of running for minutes in gigabytes.

    `steps` bound one subject's evaluation (and with it the memory of its intermediate lists);
    `total` bounds the rule over all its subjects. `renew` starts the next subject."""

    __slots__ = ("granted", "left", "steps", "total")

    def __init__(self, steps: int, total: int = UNLIMITED) -> None:
        self.steps, self.total = steps, total
        self.granted = self.left = min(steps, total)

    def renew(self) -> None:
        self.total -= self.granted - self.left
        self.granted = self.left = min(self.steps, self.total)

    def spend(self, count: int) -> None:
        self.left -= count
        if self.left < 0:
            raise OverBudget(self.granted, self.granted < self.steps)


def is_number(value: Any) -> bool:
    """JMESPath numbers: Python numbers except booleans (which are ints to Python)."""
    return not isinstance(value, bool) and isinstance(value, Number)


def _orderable(value: Any) -> bool:
    """What `<`, `<=`, `>`, `>=` compare: numbers only, as the specification says (jmespath.py
    also orders strings, and raises on a number against a string)."""
    kind = type(value)
    return kind is int or kind is float or is_number(value)


def _equals(left: Any, right: Any) -> bool:
    """JMESPath equality: Python's, except that a boolean never equals the number 0 or 1."""
    if (type(left) is bool or type(right) is bool) and (
        (is_number(left) and left in (0, 1)) or (is_number(right) and right in (0, 1))
    ):
        return False
    return bool(left == right)


def truthy(value: Any) -> bool:
    """JMESPath truth: false, null, "", [] and {} are false; everything else, 0 included, is true.

    Python's own truth differs on numbers, so exact types are checked first; anything unusual
    falls back to the interpreter's equality tests.
    """
    kind = type(value)
    if kind is bool:
        return bool(value)
    if kind is str or kind is list or kind is dict:
        return len(value) > 0
    if value is None:
        return False
    if kind is int or kind is float:
        return True
    return not (value == "" or value == [] or value == {})


def _get(value: Any, key: str) -> Any:
    """One field step on something that is not a plain dict: `.get` if it has one, else null."""
    if value is None:
        return None
    try:
        return value.get(key)
    except AttributeError:
        return None


def _itself(value: Any) -> Any:
    return value


def _is_boolish(node: AstNode) -> bool:
    """Whether the node can only yield True, False or None, whose Python truth is JMESPath's;
    `&&`, `||`, `!` and filters then need no `truthy` call."""
    kind = node["type"]
    if kind in ("comparator", "not_expression"):
        return True
    if kind in ("and_expression", "or_expression"):
        return all(_is_boolish(child) for child in node["children"])
    return kind == "literal" and (node["value"] is None or type(node["value"]) is bool)


def _flatten_sequence(node: AstNode) -> Iterator[AstNode]:
    """The steps of nested subexpressions, pipes and index expressions, in order: all three
    feed each step's result to the next, and that composition is associative."""
    if node["type"] in _SEQUENCES:
        for child in node["children"]:
            yield from _flatten_sequence(child)
    else:
        yield node


class _Expression:
    """What `&expression` evaluates to. The class name is what `Functions` type-checks
    ("expref"), and functions evaluate it as `ref.visit(ref.expression, value)`, the
    TreeInterpreter protocol, so custom functions taking expression references work unchanged."""

    __slots__ = ("_budget", "_compiled", "_functions", "expression")

    def __init__(self, expression: AstNode, compiled: Fn, functions: Functions,
                 budget: Budget) -> None:
        self.expression = expression
        self._compiled = compiled
        self._functions = functions
        self._budget = budget

    def visit(self, node: AstNode, value: Any) -> Any:
        self._budget.spend(1)
        if node is self.expression:
            return self._compiled(value)
        return compile_ast(node, self._functions, self._budget)(value)


class _Compiler:
    """Turns AST nodes into closures; the node-type dispatch happens here, once per node."""

    def __init__(self, functions: Functions, budget: Budget) -> None:
        self.functions = functions
        self.budget = budget

    def compile(self, node: AstNode) -> Fn:
        method: Callable[[AstNode], Fn] | None = getattr(self, "_" + node["type"], None)
        if method is None:
            raise NotImplementedError(node["type"])  # as TreeInterpreter.default_visit
        return method(node)

    def condition(self, node: AstNode) -> Fn:
        """A closure whose Python truth is the JMESPath truth of the node's value."""
        compiled = self.compile(node)
        if _is_boolish(node):
            return compiled
        return lambda value: truthy(compiled(value))

    # Paths ------------------------------------------------------------------------------------

    def _sequence(self, node: AstNode) -> Fn:
        steps: list[Fn] = []
        keys: list[str] = []
        for step in _flatten_sequence(node):
            if step["type"] == "field":
                keys.append(step["value"])
                continue
            if keys:
                steps.append(_chain(tuple(keys)))
                keys = []
            steps.append(self.compile(step))
        if keys:
            steps.append(_chain(tuple(keys)))
        if len(steps) == 1:
            return steps[0]
        if len(steps) == 2:
            first, second = steps
            return lambda value: second(first(value))

        def sequence(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value
        return sequence

    # A lone field is a sequence of one step: `_sequence` turns it into a one-key chain.
    _subexpression = _pipe = _index_expression = _field = _sequence

    def _index(self, node: AstNode) -> Fn:
        position: int = node["value"]

        def index(value: Any) -> Any:
            if isinstance(value, list) and -len(value) <= position < len(value):
                return value[position]
            return None
        return index

    def _slice(self, node: AstNode) -> Fn:
        # A zero step raises ValueError when applied to a list, as in the interpreter.
        part = slice(*node["children"])
        return lambda value: value[part] if isinstance(value, list) else None

    def _current(self, node: AstNode) -> Fn:
        return _itself

    _identity = _current

    def _literal(self, node: AstNode) -> Fn:
        constant = node["value"]
        return lambda value: constant

    # Projections ------------------------------------------------------------------------------

    def _projection(self, node: AstNode) -> Fn:
        base = self.compile(node["children"][0])
        right = node["children"][1]
        spend = self.budget.spend
        if right["type"] in ("identity", "current"):
            def project_all(value: Any) -> Any:
                found = base(value)
                if not isinstance(found, list):
                    return None
                spend(len(found))
                return [element for element in found if element is not None]
            return project_all
        each = self.compile(right)

        def project(value: Any) -> Any:
            found = base(value)
            if not isinstance(found, list):
                return None
            spend(len(found))
            return [out for element in found if (out := each(element)) is not None]
        return project

    def _filter_projection(self, node: AstNode) -> Fn:
        base = self.compile(node["children"][0])
        right = node["children"][1]
        keep = self.condition(node["children"][2])
        spend = self.budget.spend
        if right["type"] in ("identity", "current"):
            def select(value: Any) -> Any:
                found = base(value)
                if not isinstance(found, list):
                    return None
                spend(len(found))
                return [element for element in found if keep(element) and element is not None]
            return select
        each = self.compile(right)

        def select_project(value: Any) -> Any:
            found = base(value)
            if not isinstance(found, list):
                return None
            spend(len(found))
            return [
                out for element in found if keep(element) and (out := each(element)) is not None
            ]
        return select_project

    def _value_projection(self, node: AstNode) -> Fn:
        base = self.compile(node["children"][0])
        each = self.compile(node["children"][1])
        spend = self.budget.spend

        def project_values(value: Any) -> Any:
            found = base(value)
            try:
                values = found.values()
            except AttributeError:
                return None
            spend(len(values))
            return [out for element in values if (out := each(element)) is not None]
        return project_values

    def _flatten(self, node: AstNode) -> Fn:
        base = self.compile(node["children"][0])

        spend = self.budget.spend

        def flatten(value: Any) -> Any:
            found = base(value)
            if not isinstance(found, list):
                return None
            spend(len(found))
            merged: list[Any] = []
            for element in found:
                if isinstance(element, list):
                    spend(len(element))
                    merged.extend(element)
                else:
                    merged.append(element)
            return merged
        return flatten

    def _multi_select_list(self, node: AstNode) -> Fn:
        parts = tuple(self.compile(child) for child in node["children"])
        return lambda value: None if value is None else [part(value) for part in parts]

    def _multi_select_dict(self, node: AstNode) -> Fn:
        parts = tuple((pair["value"], self.compile(pair["children"][0])) for pair in node["children"])
        return lambda value: None if value is None else {key: part(value) for key, part in parts}

    # Logic and comparison ---------------------------------------------------------------------

    def _and_expression(self, node: AstNode) -> Fn:
        left, right = (self.compile(child) for child in node["children"])
        if _is_boolish(node["children"][0]):
            return lambda value: left(value) and right(value)

        def both(value: Any) -> Any:
            matched = left(value)
            return right(value) if truthy(matched) else matched
        return both

    def _or_expression(self, node: AstNode) -> Fn:
        left, right = (self.compile(child) for child in node["children"])
        if _is_boolish(node["children"][0]):
            return lambda value: left(value) or right(value)

        def either(value: Any) -> Any:
            matched = left(value)
            return matched if truthy(matched) else right(value)
        return either

    def _not_expression(self, node: AstNode) -> Fn:
        inner = self.compile(node["children"][0])
        if _is_boolish(node["children"][0]):
            return lambda value: not inner(value)

        def negate(value: Any) -> bool:
            found = inner(value)
            # `!` is Python's `not` in the interpreter, except that 0 is true in JMESPath.
            if is_number(found) and found == 0:
                return False
            return not found
        return negate

    def _comparator(self, node: AstNode) -> Fn:
        name: str = node["value"]
        left_node, right_node = node["children"]
        if right_node["type"] == "literal" and left_node["type"] != "literal":
            return _against_literal(name, self.compile(left_node), right_node["value"])
        if left_node["type"] == "literal" and right_node["type"] != "literal":
            return _against_literal(_MIRROR[name], self.compile(right_node), left_node["value"])
        left, right = self.compile(left_node), self.compile(right_node)
        if name == "eq":
            return lambda value: _equals(left(value), right(value))
        if name == "ne":
            return lambda value: not _equals(left(value), right(value))
        order = _ORDERING[name]

        def compare(value: Any) -> Any:
            first, second = left(value), right(value)
            return order(first, second) if _orderable(first) and _orderable(second) else None
        return compare

    # Functions --------------------------------------------------------------------------------

    def _function_expression(self, node: AstNode) -> Fn:
        name: str = node["value"]
        function_call = self.functions.call_function
        spend = self.budget.spend

        def call(name: str, resolved: list[Any]) -> Any:
            # A function's work grows with the lists it is given (sort, contains, join...).
            for item in resolved:
                if type(item) is list:
                    spend(len(item))
            return function_call(name, resolved)

        args = tuple(self.compile(child) for child in node["children"])
        allowed = _plain_signature(self.functions, name, len(args))
        if allowed is None:
            if len(args) == 1:
                (only,) = args
                return lambda value: call(name, [only(value)])
            return lambda value: call(name, [arg(value) for arg in args])
        # Arguments of exactly the declared types go straight to the function; anything else
        # takes call_function's path, which checks them and raises jmespath's own errors.
        function = self.functions.FUNCTION_TABLE[name]["function"]
        table = self.functions
        pairs = tuple(zip(args, allowed, strict=True))

        def checked(value: Any) -> Any:
            resolved = [arg(value) for arg in args]
            for item, (_, kinds) in zip(resolved, pairs, strict=True):
                if type(item) not in kinds:
                    return call(name, resolved)
                if type(item) is list:
                    spend(len(item))
            return function(table, *resolved)

        return checked

    def _expref(self, node: AstNode) -> Fn:
        expression = node["children"][0]
        reference = _Expression(expression, self.compile(expression), self.functions,
                                self.budget)
        return lambda value: reference


_PLAIN_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "boolean": (bool,), "array": (list,),
    "object": (dict,), "null": (type(None),),
}


def _plain_signature(functions: Functions, name: str, arity: int) -> list[frozenset[type]] | None:
    """The exact Python types each argument may have, when the function's signature is simple
    enough to check that way (fixed arity, plain types); None otherwise."""
    spec = functions.FUNCTION_TABLE.get(name)
    if spec is None or len(spec["signature"]) != arity:
        return None
    allowed = []
    for parameter in spec["signature"]:
        if parameter.get("variadic"):
            return None
        kinds: set[type] = set()
        for kind in parameter.get("types", ["any"]):
            if kind not in _PLAIN_TYPES:
                return None
            kinds.update(_PLAIN_TYPES[kind])
        allowed.append(frozenset(kinds))
    return allowed


def _chain(keys: tuple[str, ...]) -> Fn:
    """`a.b.c` as one closure: dict steps inline, anything else through `_get`; null ends the
    walk early because every further field of null is null."""
    if len(keys) == 1:
        (key,) = keys
        return lambda value: value.get(key) if type(value) is dict else _get(value, key)
    if len(keys) == 2:
        first, second = keys

        def pair(value: Any) -> Any:
            value = value.get(first) if type(value) is dict else _get(value, first)
            return value.get(second) if type(value) is dict else _get(value, second)
        return pair

    def walk(value: Any) -> Any:
        for key in keys:
            if type(value) is dict:
                value = value.get(key)
            elif value is None:
                return None
            else:
                value = _get(value, key)
        return value
    return walk


def _against_literal(name: str, operand: Fn, constant: Any) -> Fn:
    """`x OP literal` with the literal's type settled now rather than on every evaluation."""
    if name in ("eq", "ne"):
        negate = name == "ne"
        if constant is None or type(constant) is bool:
            # Only the singleton itself equals null, true or false in JMESPath.
            if negate:
                return lambda value: operand(value) is not constant
            return lambda value: operand(value) is constant
        if is_number(constant) and constant in (0, 1):
            def equal_to_bit(value: Any) -> bool:
                found = operand(value)
                return (type(found) is not bool and found == constant) is not negate
            return equal_to_bit
        if negate:
            return lambda value: operand(value) != constant
        return lambda value: operand(value) == constant
    order = _ORDERING[name]
    if not _orderable(constant):
        def never(value: Any) -> None:
            operand(value)  # evaluated all the same: it may raise, as in the interpreter
        return never

    def ordered(value: Any) -> Any:
        found = operand(value)
        kind = type(found)
        if kind is int or kind is float or _orderable(found):
            return order(found, constant)
        return None
    return ordered
