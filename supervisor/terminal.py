"""Text for people: what may reach a terminal or a log line from fields the world supplies.

An incident id or a service's last log line is written by whoever feeds the observer; printed
raw, an escape sequence in it can retitle the terminal, clear the screen or hide a line. Every
human reporter passes such fields through `printable`.
"""

from __future__ import annotations

import os
import re
from functools import cache
from typing import TextIO

# C0 and C1 controls and DEL, the Unicode line and paragraph separators, and the bidirectional
# overrides and isolates (which reorder what follows them on the line). Every one is unprintable
# to `str.isprintable`, so text it passes holds none, and the pattern (a third of a millisecond
# to compile, at every start) is compiled only for text that might.
_CONTROLS = "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

REASON_LIMIT = 1000  # characters of a rendered reason; the rest is cut off


def printable(text: str) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\n`, `\\u202e`)."""
    if text.isprintable():
        return text
    control = _control()
    if control.search(text) is None:
        return text
    return control.sub(_escape, text)


@cache
def _control() -> re.Pattern[str]:
    return re.compile(_CONTROLS)


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    if character in _NAMED:
        return _NAMED[character]
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def cap(text: str, limit: int = REASON_LIMIT) -> str:
    """`text` cut to `limit` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def counted(number: int, noun: str) -> str:
    """`1 node`, `2 nodes`: a count with its noun, in the plural unless it is one."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def use_colour(stream: TextIO) -> bool:
    """Colour only on a terminal that can show it: never when NO_COLOR is set
    (https://no-color.org) or TERM is `dumb` (an editor's shell, a serial console)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()
