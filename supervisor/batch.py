"""A rule's matcher over every subject of its kind at once, where that is cheap and exact.

Calling a compiled matcher costs a few closure calls per subject even when its first test (say
`service.desired != null`) already settles it; over a hundred thousand subjects and a dozen
rules that floor is most of an evaluation. Here the parts of a matcher that can neither fail nor
spend its budget (field paths, literals, comparisons, `&&`, `||`, `!`, and function calls and
projections on values that make them free) are evaluated for all subjects in one list
comprehension per node. A subject where anything else would be needed gets DEFER, and the engine
evaluates it with the per-document closure, in subject order, as before.

Why that is exact: the batch evaluates a node for a subject only where the closure would (the
right operand of `&&` and `||` only where the left one lets it), and what it evaluates has no
effect the closure would not have too. Errors and budget spending happen only in the closure's
evaluation of deferred subjects, in the same order as without the batch. A function call that
raises here is deferred, and raises again there. The one trace a batch leaves, the moments time
functions saw (for `engine.valid_until`), are the closure's own moments for the same calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from jmespath.functions import Functions

from supervisor.compiler import (
    _MIRROR,
    _ORDERING,
    AstNode,
    _chain,
    _equals,
    _flatten_sequence,
    _get,
    _is_boolish,
    _itself,
    _orderable,
    _plain_signature,
    is_number,
    truthy,
)

DEFER: Any = object()  # this subject needs the per-document closure
Rows = list[int] | None  # positions in the table; None: all of them
Batch = Callable[["Table", Rows], list[Any]]
Field = Callable[[Any], Any]


class Table:
    """The documents of one kind's subjects, read a column at a time: each path (`service.
    actual.status`) is walked once per evaluation for all subjects, whichever rules read it,
    and without building the documents. `params` is the current rule's, as in its documents."""

    def __init__(self, subjects: Sequence[Any], fields: dict[str, Field]) -> None:
        self.subjects = subjects
        self.fields = fields
        self.params: dict[str, Any] = {}
        # The work budget: function calls on lists longer than `steps` are left to the closure
        # (they would stop it anyway); the steps the others took, per row, are in `charges`, for
        # the engine to charge each subject with, in order, as the closure would have spent them.
        self.steps = 1 << 62
        self.charges: dict[int, int] = {}
        # Function calls already made on these rows with the same arguments (two rules asking
        # for failed_streak(deployments, params.deployment_window_seconds), say).
        self.calls: dict[Any, tuple[Rows, list[Any], dict[int, int]]] = {}
        self._columns: dict[tuple[str, ...], list[Any]] = {}

    def __len__(self) -> int:
        return len(self.subjects)

    def column(self, keys: tuple[str, ...], rows: Rows = None) -> list[Any]:
        """The value at `keys` in the document of every subject in `rows` (None: all of them);
        not to be written into. A path first read for some rows only (the right operand of
        `&&`, most often) is walked for those rows only, and not kept, unless they are most
        rows: then the next rule will want it too."""
        if keys[0] == "params":
            value = _chain(keys[1:])(self.params) if len(keys) > 1 else self.params
            return [value] * (len(self) if rows is None else len(rows))
        found = self._columns.get(keys)
        if found is None and rows is not None and 2 * len(rows) > len(self):
            found = self.column(keys)
        if found is not None:
            return found if rows is None else [found[row] for row in rows]
        if len(keys) == 1:
            get = self.fields.get(keys[0])
            subjects = self.subjects
            if get is None:
                found = [None] * (len(self) if rows is None else len(rows))
            elif rows is None:
                found = [get(subject) for subject in subjects]
            else:
                found = [get(subjects[row]) for row in rows]
        else:
            key = keys[-1]
            found = [value.get(key) if type(value) is dict else _get(value, key)
                     for value in self.column(keys[:-1], rows)]
        if rows is None:
            self._columns[keys] = found
        return found


def compile_batch(ast: AstNode, functions: Functions) -> Callable[[Table], list[Any]]:
    """`f(table)`: for each subject, what the compiled matcher gives on its document, or DEFER."""
    batch = _Batcher(functions).compile(ast)
    return lambda table: batch(table, None)


def _all_deferred(table: Table, rows: Rows) -> list[Any]:
    return [DEFER] * (len(table) if rows is None else len(rows))


def _may_defer(node: AstNode) -> bool:
    """Whether the node's batch can give DEFER (a field path or a literal never does)."""
    kind = node["type"]
    if kind == "literal":
        return False
    if kind in ("field", "subexpression", "pipe"):
        return any(step["type"] != "field" for step in _flatten_sequence(node))
    if kind in ("comparator", "and_expression", "or_expression", "not_expression"):
        return any(_may_defer(child) for child in node["children"])
    return True


class _Batcher:
    def __init__(self, functions: Functions) -> None:
        self.functions = functions

    def compile(self, node: AstNode) -> Batch:
        method: Callable[[AstNode], Batch] | None = getattr(self, "_" + node["type"], None)
        return _all_deferred if method is None else method(node)

    def _sequence(self, node: AstNode) -> Batch:
        steps = list(_flatten_sequence(node))
        if any(step["type"] != "field" for step in steps):
            return _all_deferred
        keys = tuple(step["value"] for step in steps)

        return lambda table, rows: table.column(keys, rows)

    _subexpression = _pipe = _field = _sequence

    def _literal(self, node: AstNode) -> Batch:
        constant = node["value"]
        return lambda table, rows: [constant] * (len(table) if rows is None else len(rows))

    def _and_expression(self, node: AstNode) -> Batch:
        return self._short_circuit(node, when_left=True)

    def _or_expression(self, node: AstNode) -> Batch:
        return self._short_circuit(node, when_left=False)

    def _short_circuit(self, node: AstNode, when_left: bool) -> Batch:
        """`&&` (the right operand where the left is true) and `||` (where it is false)."""
        left, right = (self.compile(child) for child in node["children"])
        boolish = _is_boolish(node["children"][0])

        def evaluate(table: Table, rows: Rows) -> list[Any]:
            found = list(left(table, rows))
            if boolish and when_left:
                wanted = [index for index, value in enumerate(found) if value is True]
            elif boolish:
                wanted = [index for index, value in enumerate(found)
                          if value is False or value is None]
            else:
                wanted = [index for index, value in enumerate(found)
                          if value is not DEFER and truthy(value) is when_left]
            if wanted:
                chosen = wanted if rows is None else [rows[index] for index in wanted]
                for index, value in zip(wanted, right(table, chosen), strict=True):
                    found[index] = value
            return found
        return evaluate

    def _not_expression(self, node: AstNode) -> Batch:
        inner = self.compile(node["children"][0])

        def negate(table: Table, rows: Rows) -> list[Any]:
            # As the closure: Python's `not`, except that 0 is true in JMESPath.
            return [value if value is DEFER else
                    (False if is_number(value) and value == 0 else not value)
                    for value in inner(table, rows)]
        return negate

    def _comparator(self, node: AstNode) -> Batch:
        name: str = node["value"]
        left_node, right_node = node["children"]
        if left_node["type"] == "literal" and right_node["type"] != "literal":
            name, left_node, right_node = _MIRROR[name], right_node, left_node
        left = self.compile(left_node)
        if right_node["type"] == "literal":
            constant = right_node["value"]
            return lambda table, rows: _against(name, left(table, rows), constant)
        keys = _params_path(right_node)
        if keys is not None:
            # The same for every subject: the rule's params are.
            read = _chain(keys) if keys else _itself
            return lambda table, rows: _against(name, left(table, rows), read(table.params))
        compare = _comparison(name)
        right = self.compile(right_node)
        return lambda table, rows: [
            DEFER if first is DEFER or second is DEFER else compare(first, second)
            for first, second in zip(left(table, rows), right(table, rows), strict=True)]

    def _function_expression(self, node: AstNode) -> Batch:
        name: str = node["value"]
        allowed = _plain_signature(self.functions, name, len(node["children"]))
        if allowed is None:
            return _all_deferred
        function = self.functions.FUNCTION_TABLE[name]["function"]
        table_of_functions: Any = self.functions  # RuleFunctions: told whose call it is
        args = [self.compile(child) for child in node["children"]]

        # Other types than the declared ones take the closure's checked path, and a call that
        # fails is made again by the closure, in subject order. (DEFER is of no such type.)
        # A list argument is work the budget counts: the steps go to `charges`.
        if len(args) == 1:
            (only,), (kinds,) = args, allowed

            def call_one(table: Table, rows: Rows) -> list[Any]:
                found = []
                charges, steps = table.charges, table.steps
                for position, item in enumerate(only(table, rows)):
                    kind, value = type(item), DEFER
                    if kind in kinds and (kind is not list or len(item) <= steps):
                        row = position if rows is None else rows[position]
                        table_of_functions.subject = table.subjects[row]  # whose moments
                        try:
                            value = function(table_of_functions, item)
                        except Exception:  # noqa: BLE001 - the closure raises it again
                            value = DEFER
                        if kind is list and item and value is not DEFER:
                            charges[row] = charges.get(row, 0) + len(item)
                    found.append(value)
                return found
            return self._remembered(node, call_one)
        if len(args) == 2:
            (first, second), (first_kinds, second_kinds) = args, allowed

            def call_two(table: Table, rows: Rows) -> list[Any]:
                found = []
                charges, steps = table.charges, table.steps
                for position, (one, other) in enumerate(
                        zip(first(table, rows), second(table, rows), strict=True)):
                    kind, other_kind, value = type(one), type(other), DEFER
                    if (kind in first_kinds and other_kind in second_kinds
                            and (kind is not list or len(one) <= steps)
                            and (other_kind is not list or len(other) <= steps)):
                        row = position if rows is None else rows[position]
                        table_of_functions.subject = table.subjects[row]  # whose moments
                        try:
                            value = function(table_of_functions, one, other)
                        except Exception:  # noqa: BLE001 - the closure raises it again
                            value = DEFER
                        if value is not DEFER and (kind is list or other_kind is list):
                            spent = (len(one) if kind is list else 0) + (
                                len(other) if other_kind is list else 0)
                            if spent:
                                charges[row] = charges.get(row, 0) + spent
                    found.append(value)
                return found
            return self._remembered(node, call_two)
        return _all_deferred

    def _remembered(self, node: AstNode, call: Batch) -> Batch:
        """`call`, made once per table for the same rows and argument values: functions are
        pure given the evaluation's time, which is one per table."""
        parts: list[Any] = []
        reads: list[Field] = []
        for child in node["children"]:
            keys = _params_path(child)
            if keys is not None:
                parts.append(("params", keys))
                reads.append(_chain(keys) if keys else _itself)
            elif child["type"] in ("field", "subexpression") and not _may_defer(child):
                parts.append(("path", tuple(step["value"] for step in _flatten_sequence(child))))
            elif child["type"] == "literal" and type(child["value"]) in _SCALARS:
                parts.append(("literal", type(child["value"]), child["value"]))
            else:
                return call
        static = (node["value"], tuple(parts))

        def remembered(table: Table, rows: Rows) -> list[Any]:
            values = [read(table.params) for read in reads]
            if any(type(value) not in _SCALARS for value in values):
                return call(table, rows)
            key = (static, tuple((type(value), value) for value in values))
            charges = table.charges
            known = table.calls.get(key)
            if known is not None and known[0] == rows:
                for row, steps in known[2].items():
                    charges[row] = charges.get(row, 0) + steps
                return known[1]
            mine: dict[int, int] = {}
            table.charges = mine
            try:
                found = call(table, rows)
            finally:
                table.charges = charges
            for row, steps in mine.items():
                charges[row] = charges.get(row, 0) + steps
            table.calls[key] = (rows, found, mine)
            return found
        return remembered

    def _projection(self, node: AstNode) -> Batch:
        """A projection of nothing is free and gives nothing; of anything else, the closure's."""
        base = self.compile(node["children"][0])
        return lambda table, rows: [
            [] if type(found) is list and not found
            else None if found is not DEFER and not isinstance(found, list) else DEFER
            for found in base(table, rows)]

    _filter_projection = _projection


_SCALARS = (str, int, float, bool, type(None))


def _params_path(node: AstNode) -> tuple[str, ...] | None:
    """The keys after `params` when the node is a field path starting there."""
    if node["type"] not in ("field", "subexpression"):
        return None
    steps = list(_flatten_sequence(node))
    if any(step["type"] != "field" for step in steps) or steps[0]["value"] != "params":
        return None
    return tuple(step["value"] for step in steps[1:])


def _against(name: str, found: list[Any], constant: Any) -> list[Any]:
    """`x OP constant` for each x (DEFER stays): compiler._against_literal's tests, one loop
    per case rather than a call per value."""
    if name in ("eq", "ne"):
        negate = name == "ne"
        if constant is None or type(constant) is bool:
            # Only the singleton itself equals null, true or false in JMESPath.
            return [value if value is DEFER else (value is constant) is not negate
                    for value in found]
        if is_number(constant) and constant in (0, 1):
            return [value if value is DEFER else
                    (type(value) is not bool and value == constant) is not negate
                    for value in found]
        if negate:
            return [value if value is DEFER else value != constant for value in found]
        return [value if value is DEFER else value == constant for value in found]
    if not _orderable(constant):
        return [value if value is DEFER else None for value in found]
    order = _ORDERING[name]
    return [value if value is DEFER else
            order(value, constant) if type(value) is int or type(value) is float
            or _orderable(value) else None
            for value in found]


def _comparison(name: str) -> Callable[[Any, Any], Any]:
    if name == "eq":
        return _equals
    if name == "ne":
        return lambda first, second: not _equals(first, second)
    order = _ORDERING[name]
    return lambda first, second: (
        order(first, second) if _orderable(first) and _orderable(second) else None)
