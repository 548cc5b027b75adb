"""The rule model: loading rule files, layering rule sets, and checking every rule at load."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.errors import Problem, RuleError, SupervisorError, raise_if
from supervisor.expressions import compile_known, compile_template, compiled_asts, offset_of
from supervisor.functions import function_names
from supervisor.loader import YamlDocument, load_yaml
from supervisor.model import Overrule, Rule, RuleSet, Written
from supervisor.parsed import MISSING, Parsed
from supervisor.registry import CONDITIONS, DEFAULT_SEVERITY, DEFAULT_SUMMARY
from supervisor.resources import data_dir


def default_rules_dir() -> Path:
    return data_dir("rules")


def load_rules(
    sources: Sequence[Path], *, params: dict[str, Any] | None = None
) -> RuleSet:
    """Loads rule sets in order; each later one layers over the earlier ones.

    A rule whose id already exists replaces it, in its place, only with `override: true`.
    `params` (from the command line) win over every rule set's params. A file named twice (a
    scenario's rule set also given with --rules, say) is loaded once, where it first appears.
    """
    problems: list[Problem] = []
    loaded: list[tuple[YamlDocument, dict[str, Any], set[int | None]]] = []
    seen: set[Path] = set()
    known_functions = set(function_names())
    compiled: dict[str, Any] = {}  # expression -> AST, of every file that passed the schema
    for source in sources:
        cached = Parsed("rules", str(source))
        for file in _rule_files(source, problems):
            if (same := file.resolve()) in seen:
                continue
            seen.add(same)
            saved = cached.get(str(file))
            if saved is not MISSING:
                if document := _restored(str(file), saved, compiled):
                    loaded.append((document, document.value, set()))  # it passed the schema
                    continue
                cached.unusable(str(file))
            try:
                # Recorded now: every rule keeps its position (see model.Written).
                document = load_yaml(file, str(file), record=True)
            except SupervisorError as error:
                problems.extend(error.problems)
                continue
            if not isinstance(document.value, dict):
                problems.append(document.problem((), "must be a mapping with a 'rules' list"))
                continue
            found = schemas.check("rules", document.value, _RuleSource(document))
            problems.extend(_forgotten_override(found, document, loaded))
            if not found:
                asts = compiled_asts(document.value, known_functions)
                compiled.update(asts)
                cached.put(str(file), [document.saved(), asts])
            broken = {_rule_index(problem.path) for problem in found}
            if None in broken:
                continue  # the file's own structure is wrong, not just some of its rules
            # Rules that passed the schema still get their semantic checks, so that one run
            # reports every problem.
            loaded.append((document, document.value, broken))
        cached.save()

    conditions = dict(CONDITIONS)
    shared_params: dict[str, Any] = {}
    for _, content, _ in loaded:
        conditions.update(content.get("conditions", {}))
        shared_params.update(content.get("params", {}))
    shared_params.update(params or {})

    rules: list[Rule] = []
    written: dict[str, dict[str, Any]] = {}  # each rule's keys as they stand after overrides
    for document, content, broken in loaded:
        for index, spec in enumerate(content["rules"]):
            if index in broken:
                continue
            where = _RuleSource(document)
            rule_id = spec["id"]
            path = ("rules", index, "id")
            ids = [existing.id for existing in rules]
            if rule_id in ids:
                if not spec.get("override", False):
                    earlier = rules[ids.index(rule_id)].file
                    problems.append(where.problem(
                        path, f"rule id {rule_id!r} is already defined in {earlier} "
                        "(say 'override: true' to replace it)"))
                    continue
                spec = _overridden(written[rule_id], spec)
            elif spec.get("override", False):
                problems.append(where.problem(
                    ("rules", index, "override"), f"rule {rule_id!r} overrides no earlier rule"))
                continue
            rule, found = _build_rule(spec, index, document, conditions, known_functions,
                                      compiled)
            problems.extend(found)
            anchor = spec.get("before") or spec.get("after")
            if anchor is not None and (anchor == rule_id or anchor not in ids):
                key = "before" if "before" in spec else "after"
                problems.append(where.problem(
                    ("rules", index, key), f"no earlier rule {anchor!r} to place it {key}"))
                continue
            if rule is None:
                continue
            written[rule_id] = spec
            rule = rule._replace(params={**shared_params, **rule.params, **(params or {})})
            _place(rules, rule, spec.get("before"), spec.get("after"))
    raise_if(problems, RuleError)
    return RuleSet(rules=tuple(rules), params=shared_params, conditions=conditions)


def _restored(display: str, saved: Any, compiled: dict[str, Any]) -> YamlDocument | None:
    """A rule file as the cache keeps it (see `compiled_asts`), its expressions' ASTs added to
    `compiled`; None if `saved` is not one."""
    if not (isinstance(saved, list) and len(saved) == 2 and isinstance(saved[1], dict)
            and all(type(ast) is dict for ast in saved[1].values())):
        return None
    document = YamlDocument.restore(display, saved[0])
    if document is not None:
        compiled.update(saved[1])
    return document


def _forgotten_override(found: list[Problem], document: YamlDocument,
                        loaded: list[tuple[YamlDocument, dict[str, Any], set[int | None]]]
                        ) -> list[Problem]:
    """The schema's problems, except that a rule lacking required keys whose id an earlier
    file defines is told what it most likely means: an override, which needs none of them."""
    earlier = {spec["id"]: other.display for other, content, _ in loaded
               for spec in content.get("rules", []) if isinstance(spec, dict)
               and isinstance(spec.get("id"), str)}
    rules = document.value.get("rules") if isinstance(document.value, dict) else None
    kept, hinted = [], set()
    for problem in found:
        index = _rule_index(problem.path)
        if index is None or not isinstance(rules, list) or index >= len(rules):
            kept.append(problem)
            continue
        spec = rules[index]
        if (isinstance(spec, dict) and isinstance(spec.get("id"), str)
                and spec["id"] in earlier and "override" not in spec
                and "missing required key" in problem.message):
            if index not in hinted:
                hinted.add(index)
                kept.append(_RuleSource(document).problem(
                    ("rules", index, "id"), f"rule id {spec['id']!r} is already defined in "
                    f"{earlier[spec['id']]}: say 'override: true' to change it (an override "
                    "needs only the keys it changes)"))
            continue
        kept.append(problem)
    return kept


def _overridden(earlier: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """An override's keys over the rule it overrides: `{id, override: true, enabled: false}`
    disables a rule, `{id, override: true, params: {...}}` retunes it; keys left out keep the
    earlier rule's values, and params merge key by key."""
    merged = {key: value for key, value in earlier.items() if key not in ("before", "after")}
    merged.update(spec)
    if "params" in earlier and "params" in spec:
        merged["params"] = {**earlier["params"], **spec["params"]}
    return merged


def _place(rules: list[Rule], rule: Rule, before: str | None, after: str | None) -> None:
    """Puts `rule` in the evaluation order: in place of the rule it overrides, else at the
    end, unless `before` or `after` names the rule to put it next to."""
    ids = [existing.id for existing in rules]
    if rule.id in ids:
        place = ids.index(rule.id)
        if before is None and after is None:
            rules[place] = rule
            return
        del rules[place]
        ids.pop(place)
    if before is not None:
        rules.insert(ids.index(before), rule)
    elif after is not None:
        rules.insert(ids.index(after) + 1, rule)
    else:
        rules.append(rule)


def _rule_index(path: str) -> int | None:
    """`rules[3].match` -> 3; None for a problem outside any single rule."""
    match = re.match(r"rules\[(\d+)\]", path)
    return int(match.group(1)) if match else None


def _rule_files(source: Path, problems: list[Problem]) -> list[Path]:
    if source.is_file():
        return [source]
    if not source.is_dir():
        problems.append(Problem(str(source), message="rules directory does not exist"))
        return []
    try:
        files = sorted(
            entry for entry in source.iterdir()
            if entry.suffix in (".yaml", ".yml") and not entry.name.startswith(".")
        )
    except OSError as error:
        problems.append(Problem(str(source), message=f"cannot be listed: {error.strerror}"))
        return []
    if not files:
        problems.append(Problem(str(source), message="holds no rule files (*.yaml)"))
    return files


class _RuleSource:
    """Names the rule, by id, in every problem located inside it."""

    def __init__(self, document: YamlDocument) -> None:
        self.document = document

    def problem(self, path: tuple[str | int, ...], message: str, *, key: bool = False,
                offset: int | None = None) -> Problem:
        """`offset`: where in the string value at `path` the problem is."""
        rules = self.document.value.get("rules") if isinstance(self.document.value, dict) else None
        if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) \
                and isinstance(rules, list) and path[1] < len(rules):
            spec = rules[path[1]]
            if isinstance(spec, dict) and isinstance(spec.get("id"), str):
                message = f"rule {spec['id']!r}: {message}"
        return self.document.problem(path, message, key=key, offset=offset)


def _build_rule(
    spec: dict[str, Any], index: int, document: YamlDocument,
    conditions: dict[str, str], known_functions: set[str], compiled: dict[str, Any],
) -> tuple[Rule | None, list[Problem]]:
    where = _RuleSource(document)
    at = ("rules", index)
    problems: list[Problem] = []
    kind = spec.get("subject", "service")

    ast, found = compile_known(spec["match"], known_functions, compiled)
    problems.extend(where.problem((*at, "match"), message, offset=offset_of(message))
                    for message in found)
    reason = None
    if "reason" in spec:
        reason, found = compile_template(spec["reason"], known_functions, compiled)
        problems.extend(where.problem((*at, "reason"), message, offset=offset_of(message))
                        for message in found)

    if spec["condition"] not in conditions:
        problems.append(where.problem(
            (*at, "condition"), f"unknown condition {spec['condition']!r} (known: "
            f"{', '.join(sorted(conditions))}; declare new ones under 'conditions:')"))
    overrules = None
    if "overrules" in spec:
        spec_overrules = spec["overrules"]
        if spec_overrules["subjects"] == "hosted_services" and kind != "node":
            problems.append(where.problem(
                (*at, "overrules", "subjects"), "'hosted_services' only applies to node rules"))
        for name in spec_overrules.get("conditions", []):
            if name not in conditions:
                problems.append(where.problem(
                    (*at, "overrules", "conditions"), f"unknown condition {name!r}"))
        overrules = Overrule(
            scope=spec_overrules["subjects"],
            actions=_frozen(spec_overrules.get("actions")),
            conditions=_frozen(spec_overrules.get("conditions")),
        )
    if problems:
        return None, problems
    return Rule(
        id=spec["id"],
        kind=kind,
        condition=spec["condition"],
        match=spec["match"],
        ast=ast,
        event=spec["event"],
        action=spec["action"],
        severity=spec.get("severity", DEFAULT_SEVERITY[spec["event"]]),
        reason=reason,
        description=spec.get("description", ""),
        params=spec.get("params", {}),
        overrules=overrules,
        enabled=spec.get("enabled", True),
        file=document.display,
        written=_written(document, index, spec),
        summary=spec.get("summary", DEFAULT_SUMMARY[spec["event"]]),
        freezes_resolution=spec.get("freezes_resolution", False),
    ), []


def _written(document: YamlDocument, index: int, spec: dict[str, Any]) -> Written:
    at = ("rules", index)
    keys = {key: position for key in spec
            if (position := document.locate((*at, key))) is not None}
    return Written(place=index, at=document.locate(at), keys=keys)


def _frozen(values: list[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)
