"""Reading YAML and JSON files that people and other programs write, with guards.

YAML goes through PyYAML's composer (the C one when present) and our own small constructor,
which gives us what the stock safe loader does not: duplicate keys are errors with a line and
column, aliases cannot expand into a "billion laughs", nesting is bounded, and scalars keep the
types JSON Schema expects (timestamps stay strings). Positions are only needed to report an
error, so they are computed on demand by composing the file a second time.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.nodes import Node as YamlNode

from supervisor.errors import InputError, Problem, dotted
from supervisor.limits import VARIABLES, Limits, current
from supervisor.manifest import prefetched

SYMLINK_REFUSED = "is a symlink; links inside the inventory and the world are not followed"

_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = SafeConstructor()
_TAG = "tag:yaml.org,2002:"
_PLAIN_SCALARS = {_TAG + name for name in ("null", "bool", "int", "float")}

Path_ = tuple[str | int, ...]
Position = tuple[int, int]


def read_text(path: Path | str, display: str | None = None, *, follow: bool = True,
              limits: Limits | None = None, yaml: bool = False) -> str:
    """The file's text, or an `InputError` saying why it cannot be had.

    One open, one fstat, one read: the world can hold a hundred thousand files. With
    `follow=False` a symlink is refused, for files found inside the inventory or the world.
    """
    shown = display or str(path)
    limits = limits or current()
    most, variable = ((limits.yaml_bytes, "yaml_bytes") if yaml
                      else (limits.file_bytes, "file_bytes"))
    early = prefetched(os.fspath(path))
    if early is not None:  # read (once) already, to see whether it changed
        status, raw = early
        if status.st_size > most:
            raise InputError([Problem(shown, message=f"is {status.st_size} bytes; the limit is "
                                      f"{most} ({VARIABLES[variable]})")])
        return _decode(raw, shown)
    # O_NONBLOCK: opening a FIFO planted where a file should be must not wait for a writer.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow else os.O_NOFOLLOW)
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise InputError([Problem(shown, message="does not exist")]) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            message = SYMLINK_REFUSED
        else:
            message = f"cannot be read: {error.strerror}"
        raise InputError([Problem(shown, message=message)]) from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise InputError([Problem(shown, message="is not a regular file")])
        if status.st_size > most:
            raise InputError([Problem(shown, message=f"is {status.st_size} bytes; the limit is "
                                      f"{most} ({VARIABLES[variable]})")])
        # One read of one byte more than fstat said: a short read means the end, so the usual
        # file takes a single read call; a file that grew meanwhile is read to its end.
        chunks = [os.read(descriptor, status.st_size + 1)]
        while len(chunks[-1]) > 0 and sum(map(len, chunks)) > status.st_size:
            if sum(map(len, chunks)) > most:
                raise InputError([Problem(shown, message=f"is over {most} bytes")])
            chunks.append(os.read(descriptor, 1 << 16))
    except OSError as error:
        raise InputError([Problem(shown, message=f"cannot be read: {error.strerror}")]) from None
    finally:
        os.close(descriptor)
    raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return _decode(raw, shown)


def _decode(raw: bytes, shown: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        message = f"is not valid UTF-8 (byte 0x{raw[error.start]:02x})"
        raise InputError([Problem(shown, line, column, message=message)]) from None


class YamlDocument:
    """A parsed YAML file: its value, and where each part of it was written."""

    def __init__(self, text: str, display: str, *, record: bool = False) -> None:
        """`record`: note positions while parsing, for a caller that will locate anyway."""
        self.text = text
        self.display = display
        self.limits = current()
        self._positions: dict[Path_, Position] | None = None
        self._key_positions: dict[Path_, Position] = {}
        self.value: Any
        if record:
            self.value, self._positions, self._key_positions = _build(
                text, display, self.limits, record=True)
        else:
            self.value = _build(text, display, self.limits, record=False)[0]

    def saved(self) -> list[Any]:
        """The value and every position, as JSON, for the cache (see `restore`)."""
        self.locate(())  # positions, if not recorded yet
        return [self.value,
                [[list(path), *at] for path, at in (self._positions or {}).items()],
                [[list(path), *at] for path, at in self._key_positions.items()]]

    @classmethod
    def restore(cls, display: str, saved: Any) -> YamlDocument | None:
        """A document as `saved` left it, without the file; None if `saved` is not one."""
        try:
            value, positions, key_positions = saved
            document = cls.__new__(cls)
            document.text, document.display, document.limits = "", display, current()
            document.value = value
            document._positions = {tuple(path): (line, column)
                                   for path, line, column in positions}
            document._key_positions = {tuple(path): (line, column)
                                       for path, line, column in key_positions}
        except (TypeError, ValueError):
            return None
        return document if isinstance(document.value, dict) else None

    def locate(self, path: Path_, *, key: bool = False) -> Position | None:
        """Line and column (1-based) of the value at `path`, or of its key with `key=True`.

        Falls back to the nearest enclosing value when `path` itself is not in the file.
        """
        if self._positions is None:
            _, self._positions, self._key_positions = _build(
                self.text, self.display, self.limits, record=True)
        if key and path in self._key_positions:
            return self._key_positions[path]
        while path not in self._positions and path:
            path = path[:-1]
        return self._positions.get(path)

    def problem(self, path: Path_, message: str, *, key: bool = False) -> Problem:
        line, column = self.locate(path, key=key) or (None, None)
        return Problem(self.display, line, column, dotted(path), message)


def load_yaml(path: Path | str, display: str | None = None, *, follow: bool = True,
              record: bool = False) -> YamlDocument:
    shown = display or str(path)
    return YamlDocument(read_text(path, shown, follow=follow, yaml=True), shown, record=record)


def load_json(path: Path | str, display: str | None = None, *, follow: bool = True,
              limits: Limits | None = None) -> Any:
    shown = display or str(path)
    limits = limits or current()
    return parse_json(read_text(path, shown, follow=follow, limits=limits), shown, limits)


def parse_json(text: str, display: str, limits: Limits | None = None) -> Any:
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise InputError(
            [Problem(display, error.lineno, error.colno, message=f"invalid JSON: {error.msg}")]
        ) from None
    except ValueError as error:
        raise InputError([Problem(display, message=f"invalid JSON: {error}")]) from None
    except RecursionError:
        raise InputError([Problem(display, message="invalid JSON: nested too deeply")]) from None
    # A lone surrogate (`"\\ud800"`) is valid JSON escape syntax but no character: it could
    # not be printed or written out again. Rare, so only looked for when an escape is there.
    if "\\ud" in text or "\\uD" in text:
        _reject_lone_surrogates(value, display)
    limits = limits or current()
    if len(text) > limits.string_chars:  # no string is longer than its file: most need no look
        _reject_long_strings(value, display, limits.string_chars)
    if text.count("[") + text.count("{") > limits.depth:  # only then can it nest that deep
        _reject_deep_nesting(value, display, limits.depth)
    return value


def _reject_deep_nesting(value: Any, display: str, deepest: int) -> None:
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if level > deepest:
            raise InputError([Problem(display, message=f"nested more than {deepest} levels deep "
                                      f"({VARIABLES['depth']})")])
        if isinstance(item, dict):
            pending.extend((child, level + 1) for child in item.values()
                           if isinstance(child, dict | list))
        elif isinstance(item, list):
            pending.extend((child, level + 1) for child in item if isinstance(child, dict | list))


def _reject_long_strings(value: Any, display: str, longest: int) -> None:
    for text in _strings(value):
        if len(text) > longest:
            raise InputError([Problem(display, message=f"holds a string of {len(text)} "
                                      f"characters; the limit is {longest} "
                                      f"({VARIABLES['string_chars']})")])


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included; iterative, so depth is no danger."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            yield item


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is too large for a number")
    return value


def _reject_lone_surrogates(value: Any, display: str) -> None:
    for text in _strings(value):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError([Problem(display, message="invalid JSON: a \\u escape names "
                                      "half of a surrogate pair, not a character")]) from None


def _build(
    text: str, display: str, limits: Limits, *, record: bool
) -> tuple[Any, dict[Path_, Position], dict[Path_, Position]]:
    loader = _YamlLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        message = " ".join(str(part) for part in (error.context, error.problem) if part)
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
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
                self.fail(node, path, f"{node.value[:40]!r} is not a valid {kind}")
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
