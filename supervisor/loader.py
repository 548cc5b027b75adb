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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supervisor.errors import InputError, Problem, dotted
from supervisor.limits import VARIABLES, Limits, current, find_long_integer, long_integer
from supervisor.manifest import prefetched

SYMLINK_REFUSED = "is a symlink; links inside the inventory and the world are not followed"


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
        from supervisor.yamlbuild import build_yaml  # PyYAML only when a file is parsed

        if record:
            self.value, self._positions, self._key_positions = build_yaml(
                text, display, self.limits, record=True)
        else:
            self.value = build_yaml(text, display, self.limits, record=False)[0]

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
            from supervisor.yamlbuild import build_yaml

            _, self._positions, self._key_positions = build_yaml(
                self.text, self.display, self.limits, record=True)
        if key and path in self._key_positions:
            return self._key_positions[path]
        while path not in self._positions and path:
            path = path[:-1]
        return self._positions.get(path)

    def problem(self, path: Path_, message: str, *, key: bool = False,
                offset: int | None = None) -> Problem:
        """`offset`: where the problem is inside the string value at `path`; the position then
        points there rather than at the start of the value."""
        position = self.locate(path, key=key)
        if offset is not None and position is not None and not key:
            value = self._value_at(path)
            if isinstance(value, str):
                from supervisor.yaml_positions import position_in_scalar

                position = position_in_scalar(self.text, position, value, offset) or position
        line, column = position or (None, None)
        return Problem(self.display, line, column, dotted(path), message)

    def _value_at(self, path: Path_) -> Any:
        value = self.value
        for step in path:
            try:
                value = value[step]
            except (KeyError, IndexError, TypeError):
                return None
        return value


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
        if text.startswith("\ufeff"):  # as json.loads says it, which _DECODER alone does not
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise InputError(
            [Problem(display, error.lineno, error.colno, message=f"invalid JSON: {error.msg}")]
        ) from None
    except ValueError as error:
        found = find_long_integer(text) if "integer string conversion" in str(error) else None
        if found is not None:
            line, column, digits = found
            raise InputError([Problem(display, line, column,
                                      message=f"invalid JSON: {long_integer(digits)}")]) from None
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


# One decoder for every file: json.loads with hooks would build a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _reject_lone_surrogates(value: Any, display: str) -> None:
    for text in _strings(value):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError([Problem(display, message="invalid JSON: a \\u escape names "
                                      "half of a surrogate pair, not a character")]) from None
