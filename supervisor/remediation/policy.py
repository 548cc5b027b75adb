"""Policies: `policy/*.yaml`, which recommendations may be remediated, by which executor, and the
guardrails every action is held to. Loaded like rules: YAML with guards, then JSON Schema, then
each part's own checks (matchers and argument templates compiled, executors' arguments checked,
time zones known), every problem at once, each with its file, line and column.

Policy sets layer in the order given: a later entry with an id already defined replaces it only
with `override: true`; `limits` merge key by key. No policy set, no remediation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, time
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from supervisor import schemas
from supervisor.errors import InputError, Problem, SupervisorError, raise_if
from supervisor.expressions import compile_expression
from supervisor.functions import function_names
from supervisor.loader import YamlDocument, load_yaml
from supervisor.model import Template
from supervisor.timestamps import parse_time

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Limits(NamedTuple):
    """Conservative unless a policy set says otherwise: one action per subject per hour, one per
    pass, three an hour overall, a quarter of an hour's cooldown, five minutes to show effect."""

    per_subject: int = 1
    subject_window: float = 3600.0
    per_run: int = 1
    per_hour: int = 3
    cooldown: float = 900.0
    verify_within: float = 300.0


class Weekly(NamedTuple):
    days: frozenset[int]  # Monday is 0, as datetime.weekday() counts
    start: time
    end: time  # before or equal to start: the window runs past midnight
    zone: ZoneInfo


class Window(NamedTuple):
    id: str
    weekly: Weekly | None = None
    start: datetime | None = None  # a one-off window: [start, end)
    end: datetime | None = None
    match: Any = None  # compiled JMESPath AST; None covers every subject
    mark: bool = False
    description: str = ""
    file: str = ""


# An argument value after compiling: the same shape, strings replaced by templates.
Arguments = Any


class Policy(NamedTuple):
    id: str
    match: str
    ast: Any
    executor: str
    args: Arguments
    cooldown: float | None = None
    verify_within: float | None = None
    enabled: bool = True
    description: str = ""
    file: str = ""
    line: int | None = None


class PolicySet(NamedTuple):
    policies: tuple[Policy, ...] = ()
    limits: Limits = Limits()
    windows: tuple[Window, ...] = ()

    def cooldown(self, policy: Policy) -> float:
        return policy.cooldown if policy.cooldown is not None else self.limits.cooldown

    def verify_within(self, policy: Policy) -> float:
        return (policy.verify_within if policy.verify_within is not None
                else self.limits.verify_within)


def load_policies(sources: Sequence[Path]) -> PolicySet:
    """Reads policy sets in order, each layered over the earlier ones; raises one `InputError`
    listing every problem."""
    from supervisor.remediation.executor import EXECUTORS

    problems: list[Problem] = []
    functions = set(function_names())
    limits: dict[str, Any] = {}
    policies: dict[str, Policy] = {}
    windows: dict[str, Window] = {}
    for source in sources:
        for file in _policy_files(source, problems):
            try:
                document = load_yaml(file, str(file))
            except SupervisorError as error:
                problems.extend(error.problems)
                continue
            if not isinstance(document.value, dict):
                problems.append(document.problem((), "must be a mapping with a 'policies' list"))
                continue
            found = schemas.check("policy", document.value, document)
            if found:
                problems.extend(found)
                continue
            limits.update(document.value.get("limits", {}))
            for index, spec in enumerate(document.value.get("maintenance", [])):
                window = _window(spec, ("maintenance", index), document, functions, problems)
                _layer(windows, window, spec, ("maintenance", index), document, problems)
            for index, spec in enumerate(document.value.get("policies", [])):
                at = ("policies", index)
                policy = _policy(spec, at, document, functions, problems)
                found = [document.problem((*at, "args", *path), message) for path, message
                         in EXECUTORS[spec["executor"]].check(spec.get("args", {}))]
                problems.extend(found)
                _layer(policies, None if found else policy, spec, at, document, problems)
    raise_if(problems, InputError)
    return PolicySet(policies=tuple(policies.values()), limits=Limits(**limits),
                     windows=tuple(windows.values()))


def _layer(into: dict[str, Any], item: Policy | Window | None, spec: dict[str, Any],
           at: tuple[str | int, ...], document: YamlDocument, problems: list[Problem]) -> None:
    kind = "policy" if at[0] == "policies" else "maintenance window"
    if spec["id"] in into and not spec.get("override", False):
        problems.append(document.problem(
            (*at, "id"), f"{kind} id {spec['id']!r} is already defined in "
            f"{into[spec['id']].file} (say 'override: true' to replace it)"))
    elif spec["id"] not in into and spec.get("override", False):
        problems.append(document.problem(
            (*at, "override"), f"{kind} {spec['id']!r} overrides no earlier one"))
    elif item is not None:
        into[spec["id"]] = item  # a replacement keeps its predecessor's place


def _policy(spec: dict[str, Any], at: tuple[str | int, ...], document: YamlDocument,
            functions: set[str], problems: list[Problem]) -> Policy | None:
    before = len(problems)
    ast, found = compile_expression(spec["match"], functions)
    problems.extend(document.problem((*at, "match"), message) for message in found)
    from supervisor.remediation.executor import DEFAULT_ARGS

    given = {**DEFAULT_ARGS.get(spec["executor"], {}), **spec.get("args", {})}
    args = _compile_args(given, (*at, "args"), document, functions, problems)
    if len(problems) > before:
        return None
    return Policy(
        id=spec["id"], match=spec["match"], ast=ast, executor=spec["executor"], args=args,
        cooldown=spec.get("cooldown"), verify_within=spec.get("verify_within"),
        enabled=spec.get("enabled", True), description=spec.get("description", ""),
        file=document.display, line=(document.locate(at) or (None, None))[0],
    )


def _compile_args(value: Any, at: tuple[str | int, ...], document: YamlDocument,
                  functions: set[str], problems: list[Problem]) -> Arguments:
    """Every string may hold `{{ expression }}` placeholders over the recommendation's document."""
    if isinstance(value, str):
        template, found = _template(value, functions)
        problems.extend(document.problem(at, message) for message in found)
        return template
    if isinstance(value, dict):
        return {key: _compile_args(item, (*at, key), document, functions, problems)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_compile_args(item, (*at, index), document, functions, problems)
                for index, item in enumerate(value)]
    return value


def _window(spec: dict[str, Any], at: tuple[str | int, ...], document: YamlDocument,
            functions: set[str], problems: list[Problem]) -> Window | None:
    before = len(problems)
    ast = None
    if "match" in spec:
        ast, found = compile_expression(spec["match"], functions)
        problems.extend(document.problem((*at, "match"), message) for message in found)
    weekly = start = end = None
    if "weekly" in spec:
        every = spec["weekly"]
        try:
            zone = ZoneInfo(every["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(document.problem(
                (*at, "weekly", "timezone"),
                f"unknown time zone {every['timezone']!r} (an IANA name such as Europe/Berlin)"))
        else:
            weekly = Weekly(days=frozenset(DAYS.index(day) for day in every["days"]),
                            start=_clock(every["start"]), end=_clock(every["end"]), zone=zone)
    else:
        start, end = parse_time(spec["from"]), parse_time(spec["until"])
        if end <= start:
            problems.append(document.problem((*at, "until"), "must be later than 'from'"))
    if len(problems) > before:
        return None
    return Window(id=spec["id"], weekly=weekly, start=start, end=end, match=ast,
                  mark=spec.get("mark", False), description=spec.get("description", ""),
                  file=document.display)


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in text.split(":"))
    return time.max if hours == 24 else time(hours, minutes)


def _policy_files(source: Path, problems: list[Problem]) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        problems.append(Problem(str(source), message="policy directory does not exist"))
        return []
    try:
        return sorted(entry for entry in source.iterdir()
                      if entry.suffix in (".yaml", ".yml") and not entry.name.startswith("."))
    except OSError as error:
        problems.append(Problem(str(source), message=f"cannot be listed: {error.strerror}"))
        return []


def _template(text: str, functions: set[str]) -> tuple[Template | None, list[str]]:
    """Like a rule's reason, but spacing is kept: an argument is passed on exactly as written."""
    literals, expressions, problems = [], [], []
    position = 0
    while (start := text.find("{{", position)) >= 0:
        end = text.find("}}", start + 2)
        if end < 0:
            return None, [f"'{{{{' at position {start + 1} is never closed with '}}}}'"]
        literals.append(text[position:start])
        ast, found = compile_expression(text[start + 2:end].strip(), functions)
        problems.extend(found)
        expressions.append(ast)
        position = end + 2
    literals.append(text[position:])
    if problems:
        return None, problems
    return Template(text=text, literals=tuple(literals), expressions=tuple(expressions)), []
