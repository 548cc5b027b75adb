"""Where a character of a YAML string value was written: its line and column in the file.

A JMESPath error is found at an offset in the string the YAML scalar holds; the file shows that
string quoted, escaped, or folded over several lines (`match: >-`). The value and its source are
walked side by side from where the scalar starts, a run of blanks in one matching a run in the
other, so that the error is reported where the author sees it.
"""

from __future__ import annotations

Position = tuple[int, int]  # line and column, 1-based

_BLANKS = " \t\r\n"


def position_in_scalar(text: str, start: Position, value: str, offset: int) -> Position | None:
    """The file position of `value[offset]`, for the scalar written at `start` (its first
    character, which is the quote or the block indicator for those styles), or None when the
    source cannot be matched to the value."""
    index = _index(text, start)
    if index is None or index >= len(text):
        return None
    style = text[index] if text[index] in "'\"|>" else ""
    if style in ("|", ">"):
        index = text.find("\n", index)  # the header line may carry indicators and a comment
        if index < 0:
            return None
        while index < len(text) and text[index] in _BLANKS:
            index += 1
    elif style:
        index += 1
    found = _align(text, index, value, min(offset, len(value)), style)
    if found is None:
        return None
    return text.count("\n", 0, found) + 1, found - text.rfind("\n", 0, found)


def _index(text: str, start: Position) -> int | None:
    line, column = start
    at = 0
    for _ in range(line - 1):
        at = text.find("\n", at) + 1
        if at == 0:
            return None
    return at + column - 1


def _align(text: str, at: int, value: str, offset: int, style: str) -> int | None:
    done = 0
    while done < offset:
        character = value[done]
        if character in _BLANKS:
            # Folding turns a line break and the next line's indentation into one space.
            while done < offset and value[done] in _BLANKS:
                done += 1
            if done == offset and (offset == len(value) or value[offset] in _BLANKS):
                break  # the offset falls inside the run: its start is near enough
            while at < len(text) and text[at] in _BLANKS:
                at += 1
            continue
        if at >= len(text):
            return None
        if style == "'" and character == "'" and text.startswith("''", at):
            at, done = at + 2, done + 1
        elif text[at] == character:
            at, done = at + 1, done + 1
        elif style == '"' and text[at] == "\\":
            at, done = at + _escape_length(text, at), done + 1
        else:
            return None
    return at


def _escape_length(text: str, at: int) -> int:
    kind = text[at + 1: at + 2]
    return {"x": 4, "u": 6, "U": 10}.get(kind, 2)
