"""The data model: the inventory, the world, subjects, rules and rule sets.

Plain values, apart from the modules that read them from files (`inventory`, `world`, `rules`),
so that the engine and `explain` work on them without importing YAML or the schema validator.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from supervisor.errors import Problem, dotted

# A node or service name, as SPEC gives it (the schemas say the same).
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")

# The inventory: what should be running, from `hosts/<node>/services.yaml`.


class Service(NamedTuple):
    id: str
    node: str
    name: str
    critical: bool
    depends_on: tuple[str, ...]
    desired: dict[str, Any]  # as rules see it: defaults filled in, dependencies as full ids


class Node(NamedTuple):
    name: str
    critical: bool
    desired: dict[str, Any]
    services: tuple[str, ...]  # service ids, in file order


class Inventory:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.services: dict[str, Service] = {}


# The world: what the observer saw.


class World(NamedTuple):
    observed_at: datetime
    observer: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]  # keyed by <node>/<service>
    deployments: list[dict[str, Any]]  # oldest first
    incidents: list[dict[str, Any]]  # oldest first


# Subjects: what rules are evaluated on.


class Subject(NamedTuple):
    kind: str  # service, node or world
    id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "id": self.id}

    @property
    def node(self) -> str:
        """The node a service or node subject is on."""
        return self.id.split("/", 1)[0]


WORLD = Subject("world", "world")


# Rules, as loaded from rule files.


class Overrule(NamedTuple):
    scope: str  # a key of registry.OVERRULE_SCOPES
    actions: frozenset[str] | None = None
    conditions: frozenset[str] | None = None

    def covers(self, action: str, condition: str) -> bool:
        return (self.actions is None or action in self.actions) and (
            self.conditions is None or condition in self.conditions
        )


class Template(NamedTuple):
    """A reason: literal text and compiled JMESPath placeholders, alternating."""

    text: str
    literals: tuple[str, ...]
    expressions: tuple[Any, ...]  # compiled ASTs, one fewer than literals


Position = tuple[int, int]  # line and column, 1-based


class Written(NamedTuple):
    """Where a rule was written, kept at load so that later problems need not read the file again."""

    place: int = 0  # its index in its file's `rules` list
    at: Position | None = None  # the rule's own mapping
    keys: dict[str, Position] = {}  # noqa: RUF012 - never mutated; each key's value

    def locate(self, key: str) -> Position | None:
        """The key's value, else (a key the rule does not have) the rule itself."""
        return self.keys.get(key, self.at)


class Rule(NamedTuple):
    id: str
    kind: str  # which subjects it applies to: service, node or world
    condition: str
    match: str
    ast: Any  # the matcher's JMESPath AST
    event: str = ""
    action: str = ""
    severity: str = ""
    reason: Template | None = None
    description: str = ""
    params: dict[str, Any] = {}  # noqa: RUF012 - always given; never mutated
    overrules: Overrule | None = None
    enabled: bool = True
    file: str = ""
    written: Written = Written()
    # What the rule's recommendation means beyond itself; the engine and `run` read these,
    # never the condition's name, so a rule renamed or replaced keeps its meaning.
    summary: str = "degraded"  # the summary state it brings at least (registry.RULE_SUMMARIES)
    freezes_resolution: bool = False  # while it is open, `run` resolves nothing

    def problem(self, key: str, message: str) -> Problem:
        """A problem with one of the rule's keys, at its line and column in the rule's file."""
        line, column = self.written.locate(key) or (None, None)
        return Problem(self.file, line, column, dotted(("rules", self.written.place, key)),
                       f"rule {self.id!r}: {message}")


class RuleSet(NamedTuple):
    rules: tuple[Rule, ...]
    params: dict[str, Any]
    conditions: dict[str, str]

    def rule(self, rule_id: str) -> Rule:
        return next(rule for rule in self.rules if rule.id == rule_id)
