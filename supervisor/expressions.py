"""JMESPath expressions in rules: compiled to ASTs, checked at load, their problems placed.

A rule's `match` is one expression and its `reason` a template of `{{ expression }}`
placeholders. Each is parsed by jmespath, then held to limits jmespath does not set (nesting
depth) and to the functions the rules may call; a problem carries the offset in the expression
where it is, so that the rule file's reader can report it at its line and column.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any, Self

import jmespath
from jmespath.exceptions import IncompleteExpressionError, LexerError, ParseError

from supervisor.model import Template

MAX_EXPRESSION_DEPTH = 128  # dict and list levels of the AST: a chain of some 60 operators


class ExpressionProblem(str):
    """A message about a JMESPath expression, and the offset in the expression's text where the
    problem is (None: the expression as a whole), so that it can be reported at its place in
    the file. A string, for callers that only print it."""

    offset: int | None

    def __new__(cls, message: str, offset: int | None = None) -> Self:
        problem = super().__new__(cls, message)
        problem.offset = offset
        return problem



def offset_of(message: str) -> int | None:
    """Where in its expression a problem from `compile_expression` is, if it says."""
    return message.offset if isinstance(message, ExpressionProblem) else None


def compile_expression(text: str, known_functions: set[str]) -> tuple[Any, list[str]]:
    """The expression's AST, or the reasons it cannot be one (each an `ExpressionProblem`)."""
    shown = text if len(text) <= 200 else text[:199] + "…"
    try:
        ast = jmespath.compile(text).parsed
    except ParseError as error:
        offset, what = _parse_problem(error, text)
        return None, [ExpressionProblem(f"invalid JMESPath: {what}: {shown!r}", offset)]
    except RecursionError:
        return None, [ExpressionProblem(f"JMESPath nested too deeply: {shown!r}")]
    except ValueError as error:  # a literal number of more than 4300 digits, say
        return None, [ExpressionProblem(f"invalid JMESPath: {_value_error(error)}: {shown!r}")]
    if _depth(ast) > MAX_EXPRESSION_DEPTH:
        return None, [ExpressionProblem(
            f"JMESPath nested more than {MAX_EXPRESSION_DEPTH} levels deep "
            f"(a chain of that many operators counts as deep): {shown!r}")]
    unknown = sorted({name for name in _function_calls(ast) if name not in known_functions})
    if unknown:
        return None, [ExpressionProblem(
            f"unknown function {name}(){_closest(name, known_functions)} in {shown!r}",
            _call_offset(text, name)) for name in unknown]
    return ast, []


def _parse_problem(error: ParseError, text: str) -> tuple[int, str]:
    """Where in `text` the parser stopped, and what is wrong there, with the fix where the
    mistake is a common one."""
    value, kind = error.token_value, error.token_type or ""
    if isinstance(error, IncompleteExpressionError) or kind == "EOF":
        return len(text), "the expression ends too early"
    if isinstance(error, LexerError):
        if error.message.startswith("Unclosed"):
            return error.lex_position, f"{str(value)[:1]} opened here is never closed"
        if value == "=":
            return error.lex_position, "'=' is not an operator: to compare, write '=='"
        return error.lex_position, error.message[:1].lower() + error.message[1:100]
    if kind == "NUMBER":
        return error.lex_position, (f"a bare number is not a value in JMESPath: write "
                                    f"`{value}` (in backquotes)")
    return error.lex_position, f"unexpected {str(value)[:40]!r}"


def _value_error(error: ValueError) -> str:
    if "int_max_str_digits" in str(error) or "integer string conversion" in str(error):
        return "a number of more than 4300 digits"
    return str(error)[:100]


def _closest(name: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}()?)" if close else ""


def _call_offset(text: str, name: str) -> int | None:
    found = re.search(rf"(?<![\w]){re.escape(name)}\s*\(", text)
    return found.start() if found else None


def _depth(ast: Any) -> int:
    """How deeply `ast` nests, literal values included; iterative, so any depth is safe."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(ast, 1)]
    while pending:
        node, level = pending.pop()
        deepest = max(deepest, level)
        if deepest > MAX_EXPRESSION_DEPTH:
            break
        if isinstance(node, dict):
            pending.extend((child, level + 1) for child in node.values()
                           if isinstance(child, dict | list))
        elif isinstance(node, list):
            pending.extend((child, level + 1) for child in node if isinstance(child, dict | list))
    return deepest


def _placeholders(text: str) -> tuple[list[str], list[tuple[int, str]], list[str]]:
    """Literal pieces, placeholder expressions (with their offsets), and problems. A linear
    scan: a regular expression with a lazy group backtracks quadratically on many unclosed `{{`."""
    literals: list[str] = []
    expressions: list[tuple[int, str]] = []
    problems: list[str] = []
    position = 0
    while (start := text.find("{{", position)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            problems.append(ExpressionProblem("'{{' is never closed with '}}'", start))
            break
        literals.append(text[position:start])
        expressions.append((start + 2, text[start + 2:end]))
        position = end + 2
    literals.append(text[position:])
    return literals, expressions, problems


def compile_known(text: str, known_functions: set[str], compiled: dict[str, Any]
             ) -> tuple[Any, list[str]]:
    """`compile_expression`, or the AST the expression compiled to before (see `_compiled`),
    where it is one the parser could have made: the cache holds data only, and a damaged or
    edited one could hold anything."""
    ast = compiled.get(text)
    if ast is not None and well_formed(ast, known_functions):
        return ast, []
    return compile_expression(text, known_functions)


# Every kind of node jmespath's parser makes: how many children (None: any number), and the
# types its value may have (None: it has none; "any": a literal's, from JSON).
_NODES: dict[str, tuple[int | None, tuple[type, ...] | str | None]] = {
    "and_expression": (2, None), "current": (0, None), "expref": (1, None),
    "field": (0, (str,)), "filter_projection": (3, None), "flatten": (1, None),
    "function_expression": (None, (str,)), "identity": (0, None), "index": (0, (int,)),
    "index_expression": (None, None), "key_val_pair": (1, (str,)), "literal": (0, "any"),
    "multi_select_dict": (None, None), "multi_select_list": (None, None),
    "not_expression": (1, None), "or_expression": (2, None), "pipe": (2, None),
    "projection": (2, None), "subexpression": (None, None), "value_projection": (2, None),
    "comparator": (2, (str,)),
}
_COMPARATORS = frozenset({"eq", "ne", "lt", "gt", "lte", "gte"})


def well_formed(ast: Any, known_functions: set[str]) -> bool:
    """Whether `ast` has the shape of one jmespath's parser makes, within the depth (each node
    is two levels of `_depth`) and the functions `compile_expression` allows."""
    pending = [(ast, 1)]
    while pending:
        node, level = pending.pop()
        if type(node) is not dict or level > MAX_EXPRESSION_DEPTH // 2:
            return False
        kind, children = node.get("type"), node.get("children")
        if type(kind) is not str or type(children) is not list:
            return False
        if kind == "slice":  # its children are the bounds and the step, whole numbers
            if len(node) != 2 or len(children) != 3 or not all(
                    bound is None or type(bound) is int for bound in children):
                return False
            continue
        shape = _NODES.get(kind)
        if shape is None:
            return False
        count, types = shape
        if count is not None and len(children) != count:
            return False
        if types is None:
            wrong = len(node) != 2
        else:
            value = node.get("value", _NODES)  # the table itself: no value could be it
            wrong = (len(node) != 3 or value is _NODES
                     or (types != "any" and type(value) not in types)
                     or (kind == "comparator" and value not in _COMPARATORS)
                     or (kind == "function_expression" and value not in known_functions))
        if wrong or (kind == "multi_select_dict" and not all(
                type(child) is dict and child.get("type") == "key_val_pair" for child in children)):
            return False
        pending.extend((child, level + 1) for child in children)
    return True


def compile_template(text: str, known_functions: set[str],
                     compiled: dict[str, Any] | None = None) -> tuple[Template | None, list[str]]:
    pieces, placeholders, problems = _placeholders(text)
    if problems:
        return None, problems
    # Reasons are one line, whatever the YAML block style they were written in.
    literals = [re.sub(r"\s+", " ", literal) for literal in pieces]
    literals[0], literals[-1] = literals[0].lstrip(), literals[-1].rstrip()
    expressions = []
    for start, expression in placeholders:
        ast, found = compile_known(expression.strip(), known_functions, compiled or {})
        lead = start + len(expression) - len(expression.lstrip())
        problems.extend(ExpressionProblem(problem, None if (at := offset_of(problem)) is None
                                          else at + lead) for problem in found)
        expressions.append(ast)
    if problems:
        return None, problems
    return Template(text=text, literals=tuple(literals), expressions=tuple(expressions)), []


def nodes(ast: Any) -> Iterator[dict[str, Any]]:
    """Every node of an expression tree, without recursion (trees may be deep)."""
    pending = [ast]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            yield item
            pending.extend(item.get("children", []))


def _function_calls(node: Any) -> Iterator[str]:
    return (item["value"] for item in nodes(node) if item.get("type") == "function_expression")


def compiled_asts(content: dict[str, Any], known_functions: set[str]) -> dict[str, Any]:
    """The AST of every expression (matchers and reasons' placeholders) in a rule file that
    passed the schema, where it compiles without a problem: kept in the cache with the file, so
    that a run that takes the file from there parses none of its expressions again (a third of
    a small `eval`). Only ASTs that JSON gives back unchanged: not a literal NaN or infinity."""
    texts: list[str] = []
    for spec in content.get("rules", []):
        if isinstance(spec.get("match"), str):
            texts.append(spec["match"])
        if isinstance(spec.get("reason"), str):
            texts.extend(text.strip() for _, text in _placeholders(spec["reason"])[1])
    asts: dict[str, Any] = {}
    for text in texts:
        ast, found = compile_expression(text, known_functions)
        if not found and _plain(ast):
            asts[text] = ast
    return asts


def _plain(value: Any) -> bool:
    """Whether `value` is made of JSON's types only, with finite numbers."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif item is not None and not isinstance(item, str | int):
            return False
    return True
