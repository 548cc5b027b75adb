"""`supervisor test --update`: the current recommendations written into a scenario's expect.yaml.

A person wrote that file, so only the values that change are replaced, in place: `summary`,
`exact` and the `must` list. Comments, key order, blank lines and the list's indentation stay
as they were. Where that is not possible (a comment inside the list being replaced, a
`must_not` entry that the new result would contradict), the file is left alone and the reason
is returned instead.
"""

from __future__ import annotations

import difflib
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from supervisor.scenarios import EXPECT_FILE, Key, ScenarioResult, forbids


class Accepted(NamedTuple):
    diff: str = ""  # what changed, as a unified diff; empty when nothing did
    refused: str = ""  # why the file was left as it is, when it needed a change


def accept(result: ScenarioResult) -> Accepted:
    """Rewrites the scenario's expect.yaml to expect what it evaluated to now."""
    evaluation = result.evaluation
    if evaluation is None or result.passed:
        return Accepted()  # bad-input scenarios and passing files are left untouched
    path = result.directory / EXPECT_FILE
    old_text = path.read_text(encoding="utf-8")
    spec = yaml.safe_load(old_text) or {}
    must: list[Key] = [
        (r.subject.kind, r.subject.id, r.condition, r.event, r.action)
        for r in evaluation.recommendations
    ]
    for key in must:
        for index, forbidden in enumerate(spec.get("must_not", [])):
            if forbids(forbidden, key):
                return Accepted(refused=(
                    f"{path}: not updated: [{', '.join(key)}] is recommended now, and "
                    f"must_not[{index}] forbids it; change the rules or the file by hand"))
    try:
        new_text = _edited(old_text, {"summary": evaluation.summary, "exact": True,
                                      "must": [list(key) for key in must]})
    except _Refused as reason:
        return Accepted(refused=f"{path}: not updated: {reason}; change the file by hand")
    wanted = {**spec, "summary": evaluation.summary, "exact": True,
              "must": [list(key) for key in must]}
    if yaml.safe_load(new_text) != wanted:  # never write what would not read back as meant
        return Accepted(refused=f"{path}: not updated: its layout could not be kept; "
                        "change the file by hand")
    if new_text == old_text:
        return Accepted()
    _write(path, new_text)
    return Accepted(diff="".join(difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=f"{path} (before)", tofile=f"{path} (after)")))


class _Refused(Exception):
    pass


def _edited(text: str, values: dict[str, Any]) -> str:
    """`text` with each top-level key of `values` set to its value, in place, or appended."""
    root = yaml.compose(text) if text.strip() else None
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise _Refused("it is not a mapping")
    entries: dict[str, tuple[yaml.Node, yaml.Node]] = {
        key.value: (key, value) for key, value in (root.value if root else [])
        if isinstance(key, yaml.ScalarNode)}
    indent = _indent(entries)
    edits: list[tuple[int, int, str]] = []
    appended: list[str] = []
    for name, value in values.items():
        if name not in entries:
            appended.append(f"{name}:{_render(value, indent)}\n")
            continue
        key, node = entries[name]
        edits.append(_edit(text, key, node, value, indent))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    if appended:
        text = (text if not text or text.endswith("\n") else text + "\n") + "".join(appended)
    return text


def _edit(text: str, key: yaml.Node, node: yaml.Node, value: Any,
          indent: str) -> tuple[int, int, str]:
    """(start, end, replacement) that sets the key's value."""
    colon = text.index(":", key.end_mark.index) + 1
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value and value:
        # Block list to block list: replace the item lines only, keeping what follows the key.
        start = text.rfind("\n", 0, node.start_mark.index) + 1
        last = node.value[-1].end_mark.index
        end = text.find("\n", last)
        end = len(text) if end < 0 else end
        if "#" in text[start:end]:
            raise _Refused("a comment inside its 'must' list would be lost")
        return start, end, _render(value, " " * node.start_mark.column)[1:]
    end = node.end_mark.index
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        end = node.value[-1].end_mark.index  # a block list's own end lies past what follows it
    replaced = text[colon:node.start_mark.index if isinstance(node, yaml.ScalarNode) else end]
    if "#" in replaced:
        raise _Refused(f"a comment at '{key.value}' would be lost")
    return colon, end, _render(value, indent)


def _render(value: Any, indent: str) -> str:
    """The text after `key:` for `value`: a scalar, `[]`, or a block list of flow items."""
    if isinstance(value, list) and value:
        return "".join(f"\n{indent}- {_flow(item)}" for item in value)
    return f" {_flow(value)}"


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1_000_000)
    return text.removesuffix("\n...\n").removesuffix("\n")


def _indent(entries: dict[str, tuple[yaml.Node, yaml.Node]]) -> str:
    """How the file indents its lists: as its `must` or `must_not` list, else not at all."""
    for name in ("must", "must_not"):
        node = entries.get(name, (None, None))[1]
        if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
            return " " * node.start_mark.column
    return ""


def _write(path: Path, text: str) -> None:
    """Replaces the file whole (a reader sees the old or the new one), keeping its mode."""
    mode = stat.S_IMODE(path.stat().st_mode)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as handle:
        handle.write(text)
    os.chmod(handle.name, mode)
    os.replace(handle.name, path)
