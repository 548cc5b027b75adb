"""JSON Schema validation of the inventory, the world and the rules, with messages for people.

Two validators, one verdict: jsonschema-rs (compiled, ~100x faster) decides whether a document
is valid; only an invalid one goes through `jsonschema`, the reference implementation, whose
errors carry what a good message needs. A test keeps their verdicts equal on valid and invalid
inputs. `jsonschema` is imported only then, which keeps start-up fast.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from supervisor.errors import Problem, dotted
from supervisor.resources import data_dir
from supervisor.timestamps import is_time

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

Path_ = tuple[str | int, ...]


class Source(Protocol):
    """Where a document came from, able to say where a path inside it is."""

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem: ...


class JsonSource:
    """A JSON file. Given the text it was parsed from, a problem gets its line and column,
    found in the text only then: valid files, nearly all of them, never pay for positions."""

    def __init__(self, display: str, prefix: Path_ = (), text: str | None = None) -> None:
        self.display = display
        self.prefix = prefix
        self.text = text

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        line = column = None
        if self.text is not None:
            from supervisor.json_positions import locate

            line, column = locate(self.text, path, key=key) or (None, None)
        return Problem(self.display, line, column, dotted((*self.prefix, *path)), message)


@cache
def _schema_file(name: str) -> dict[str, Any]:
    with (data_dir("schemas") / f"{name}.schema.json").open(encoding="utf-8") as handle:
        schema: dict[str, Any] = json.load(handle)
    return schema


def _schema(name: str, definition: str | None) -> dict[str, Any]:
    schema = _schema_file(name)
    if definition is None:
        return schema
    return {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}


@cache
def fast_validator(name: str, definition: str | None = None) -> Any:
    """The compiled validator for a schema file, or for one of its `$defs`."""
    # Formats are checked only when asked; date-time is ours, which insists on a zone.
    import jsonschema_rs  # only when a document is checked: a warm cache needs none

    return jsonschema_rs.Draft202012Validator(
        _schema(name, definition), validate_formats=True, formats={"date-time": is_time})


@cache
def validator(name: str, definition: str | None = None) -> Draft202012Validator:
    """The reference validator, for the messages about an invalid document."""
    from jsonschema import Draft202012Validator, FormatChecker

    # jsonschema checks `format` only when given a checker, and its own date-time check needs an
    # optional package.
    formats = FormatChecker(formats=())
    formats.checks("date-time")(is_time)
    return Draft202012Validator(_schema(name, definition), format_checker=formats)


def check(name: str, instance: Any, source: Source, definition: str | None = None) -> list[Problem]:
    """Every way `instance` breaks the schema, each as a located problem."""
    if fast_validator(name, definition).is_valid(instance):
        return []
    problems: list[Problem] = []
    said: set[tuple[Path_, str]] = set()
    for error in validator(name, definition).iter_errors(instance):
        # The validator gives one error per missing key, each listing all of them.
        for path, message, key in _describe(error):
            if (path, message) not in said:
                said.add((path, message))
                problems.append(source.problem(path, message, key=key))
    return problems


def _describe(error: ValidationError) -> list[tuple[Path_, str, bool]]:
    path: Path_ = tuple(error.absolute_path)
    kind = error.validator
    value: Any = error.validator_value
    instance = error.instance
    schema = error.schema if isinstance(error.schema, dict) else {}
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        found = []
        for name in instance:
            if name in known or any(re.search(pattern, name) for pattern in patterns):
                continue
            found.append(((*path, name), f"unknown key {name!r}{_did_you_mean(name, known)}", True))
        return found
    if kind == "required" and isinstance(instance, dict):
        return [
            (path, f"missing required key {name!r}", False)
            for name in value
            if name not in instance
        ]
    if kind == "type":
        wanted = value
        wanted_text = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return [(path, f"expected {wanted_text}, got {_shown(instance)}", False)]
    if kind == "enum":
        choices = [str(choice) for choice in value]
        hint = _did_you_mean(str(instance), choices) if isinstance(instance, str) else ""
        return [(path, f"{_shown(instance)} is not one of: {', '.join(choices)}{hint}", False)]
    if kind == "format":
        return [(path, (f"{_shown(instance)} is not an RFC 3339 timestamp with a zone "
                       "(like 2026-11-26T10:00:00Z)"), False)]
    if kind == "pattern":
        in_name = _is_property_name(error)
        what = "name" if in_name else "value"
        rule = _PATTERNS.get(value, f"does not match {value}")
        message = f"{what} {instance!r} {rule}"
        return [((*path, str(instance)) if in_name else path, message, in_name)]
    if kind == "uniqueItems":
        return [(path, "lists the same item more than once", False)]
    return [(path, error.message, False)]


_NAME = "lowercase letters, digits, '_', '.' and '-', starting with a letter or digit, at most 63"
_PATTERNS = {
    "^[a-z0-9][a-z0-9_.-]{0,62}$": f"is not a valid name ({_NAME})",
    "^[a-z0-9][a-z0-9_.-]{0,62}/[a-z0-9][a-z0-9_.-]{0,62}$":
        "is not a service id (<node>/<service>)",
    "^([a-z0-9][a-z0-9_.-]{0,62}/)?[a-z0-9][a-z0-9_.-]{0,62}$":
        "is not a service (<service> on the same node, or <node>/<service>)",
    "^[a-z0-9][a-z0-9_.-]{0,62}(/[a-z0-9][a-z0-9_.-]{0,62})?$":
        "is not a node or service id (<node> or <node>/<service>)",
    "^[a-z][a-z0-9_]{0,62}$": "is not a valid word (lowercase letters, digits and '_')",
    "^[a-zA-Z_][a-zA-Z0-9_]*$":
        "is not a Prometheus label name (letters, digits and '_', not starting with a digit)",
}


def _is_property_name(error: ValidationError) -> bool:
    return "propertyNames" in error.absolute_schema_path


def _shown(value: Any) -> str:
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
             dict: "mapping", type(None): "null"}
    kind = kinds.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return kind
    text = json.dumps(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
