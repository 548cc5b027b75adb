"""YAML text to plain values, through PyYAML's composer (the C one when present) and our own
small constructor: see `loader` for why. Apart, so that only a run that parses YAML imports
PyYAML."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from supervisor.errors import InputError, Problem, dotted
from supervisor.limits import INTEGER_DIGITS, VARIABLES, Limits, long_integer

_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {_TAG + name for name in ("null", "bool", "int", "float")}

Path_ = tuple[str | int, ...]
Position = tuple[int, int]


def _character_at(text: str, line: int, column: int) -> str:
    """The character at a 0-based line and column of `text`, or '' past its end."""
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            return ""
    return text[start + column: start + column + 1]


def build_yaml(
    text: str, display: str, limits: Limits, *, record: bool
) -> tuple[Any, dict[Path_, Position], dict[Path_, Position]]:
    loader = _YamlLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        if mark is not None and _character_at(text, mark.line, mark.column) == "\t":
            message = "a tab: YAML indents with spaces only (replace the tab with spaces)"
        raise InputError([Problem(display, line, column, message=f"invalid YAML: {message}")]) from None
    except yaml.YAMLError as error:
        raise InputError([Problem(display, message=f"invalid YAML: {error}")]) from None
    finally:
        loader.dispose()
    if root is None:
        raise InputError([Problem(display, 1, 1, message="is empty")])
    builder = _Builder(display, limits, budget=2 * len(text) + 100_000, record=record)
    value = builder.build(root, ())
    if builder.problems:
        raise InputError(builder.problems)
    return value, builder.positions, builder.key_positions


class _Builder:
    """Turns composed YAML nodes into plain JSON-like values."""

    def __init__(self, display: str, limits: Limits, *, budget: int, record: bool) -> None:
        self.display = display
        self.limits = limits
        self.budget = budget
        self.depth = 0
        self.record = record
        self.problems: list[Problem] = []
        self.positions: dict[Path_, Position] = {}
        self.key_positions: dict[Path_, Position] = {}

    def fail(self, node: YamlNode, path: Path_, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.display, mark.line + 1, mark.column + 1, dotted(path), message))

    def build(self, node: YamlNode, path: Path_) -> Any:
        # Every node built counts, aliases and merge sources included, so that no document
        # can make the constructor do more than a bounded amount of work.
        self.budget -= 1
        if self.budget < 0:
            raise InputError(
                [Problem(self.display, message="YAML aliases expand to too many values; "
                         "refusing to load it (an alias bomb?)")]
            )
        self.depth += 1  # not len(path): merge keys nest without lengthening the path
        try:
            if self.depth > self.limits.depth:
                raise InputError(
                    [Problem(self.display, node.start_mark.line + 1, node.start_mark.column + 1,
                             message=f"nested more than {self.limits.depth} levels deep "
                             f"({VARIABLES['depth']})")]
                )
            if self.record:
                self.positions.setdefault(
                    path, (node.start_mark.line + 1, node.start_mark.column + 1))
            if isinstance(node, ScalarNode):
                return self.scalar(node, path)
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            self.fail(node, path, "unsupported YAML node")  # pragma: no cover - no other kind
            return None
        finally:
            self.depth -= 1

    def scalar(self, node: ScalarNode, path: Path_) -> Any:
        tag = node.tag
        if len(node.value) > self.limits.string_chars:
            self.fail(node, path, f"a string of {len(node.value)} characters; the limit is "
                      f"{self.limits.string_chars} ({VARIABLES['string_chars']})")
            return None
        if tag == _TAG + "str" or tag == _TAG + "timestamp":
            # Timestamps stay text: JSON Schema checks them, and the engine parses them once.
            return node.value
        if tag in _PLAIN_SCALARS:
            constructor: Callable[[SafeConstructor, ScalarNode], Any] = (
                SafeConstructor.yaml_constructors[tag]
            )
            try:
                value = constructor(_SCALARS, node)
            except (ValueError, KeyError, IndexError):
                # `!!int ""`, `0x`, `!!bool maybe`, an integer of more than 4300 digits
                kind = tag[len(_TAG):]
                digits = sum(character.isdigit() for character in node.value)
                self.fail(node, path, long_integer(digits) if digits > INTEGER_DIGITS
                          else f"{node.value[:40]!r} is not a valid {kind}")
                return None
            if isinstance(value, float) and not math.isfinite(value):
                self.fail(node, path, f"{node.value!r} is not a finite number")
            return value
        self.fail(node, path, f"unsupported YAML tag {tag!r}")
        return None

    def mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        explicit: dict[str, Any] = {}
        first_seen: dict[str, YamlNode] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.merge(value_node, path, merged)
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag != _TAG + "str":
                shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
                self.fail(key_node, path, f"key {shown!r} must be a string (quote it)")
                continue
            key = key_node.value
            if key in first_seen:
                self.fail(
                    key_node, (*path, key),
                    f"duplicate key {key!r} (first defined at line "
                    f"{first_seen[key].start_mark.line + 1})",
                )
                continue
            first_seen[key] = key_node
            if self.record:
                mark = key_node.start_mark
                self.key_positions[(*path, key)] = (mark.line + 1, mark.column + 1)
            explicit[key] = self.build(value_node, (*path, key))
        if not merged:
            return explicit
        # Merge keys (`<<: *defaults`): keys written in this mapping win over merged ones.
        return {**merged, **explicit}

    def merge(self, value_node: YamlNode, path: Path_, merged: dict[str, Any]) -> None:
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.fail(source, path, "a merge key (<<) must refer to a mapping")
                continue
            for key, value in self.build(source, path).items():
                merged.setdefault(key, value)
