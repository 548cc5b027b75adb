"""Where a path lies in a JSON text, as line and column, for messages about a file with a problem.

Computed only when a problem is reported, from the text already read: the fast path
(`json.loads` over a hundred thousand records) keeps no positions and pays nothing for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable

# The JSON module's own string scanner, so a key reads exactly as json.loads read it; typeshed
# leaves it out.
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]

Path_ = tuple[str | int, ...]

_BLANK = " \t\n\r"
_DECODER = json.JSONDecoder()


def locate(text: str, path: Path_, *, key: bool = False) -> tuple[int, int] | None:
    """Line and column (1-based) of the value at `path`, or of its key with `key`; the nearest
    enclosing value when the path goes further than the text (a missing key: its object)."""
    try:
        offset = _offset(text, path, key)
    except (ValueError, IndexError):
        return None  # not the JSON we parsed (changed since?): no position rather than a wrong one
    line = text.count("\n", 0, offset) + 1
    return line, offset - text.rfind("\n", 0, offset)


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _BLANK:
        at += 1
    return at


def _after(text: str, at: int) -> int:
    """Just past the value at `at`, and past a comma that follows it."""
    _, end = _DECODER.raw_decode(text, at)
    end = _skip(text, end)
    return _skip(text, end + 1) if text[end] == "," else end


def _offset(text: str, path: Path_, key: bool) -> int:
    at = _skip(text, 0)
    for depth, step in enumerate(path):
        if isinstance(step, str):
            if text[at] != "{":
                return at
            found: tuple[int, int] | None = None
            cursor = _skip(text, at + 1)
            while text[cursor] != "}":
                name, end = scanstring(text, cursor + 1)
                value_at = _skip(text, _skip(text, end) + 1)  # past the colon
                if name == step:
                    found = (cursor, value_at)  # the last one wins, as in json.loads
                cursor = _after(text, value_at)
            if found is None:
                return at
            if key and depth == len(path) - 1:
                return found[0]
            at = found[1]
        else:
            if text[at] != "[":
                return at
            cursor, index = _skip(text, at + 1), 0
            while text[cursor] != "]" and index < step:
                cursor, index = _after(text, cursor), index + 1
            if text[cursor] == "]":
                return at
            at = cursor
    return at
