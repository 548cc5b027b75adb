"""Scenario directories: `hosts/`, `world/` and `expect.yaml`, checked against an evaluation.

`supervisor test` and the project's own golden tests both run scenarios through here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.engine import Evaluation
from supervisor.errors import InputError, Problem, SupervisorError
from supervisor.inputs import Inputs, evaluate_inputs
from supervisor.loader import load_yaml
from supervisor.merge import State
from supervisor.model import RuleSet
from supervisor.registry import EVENT_TYPES

EXPECT_FILE = "expect.yaml"
Key = tuple[str, str, str, str, str]  # subject kind, subject id, condition, event, action


@dataclass(frozen=True)
class Expectation:
    directory: Path
    summary: str | None = None
    exact: bool = False
    must: tuple[Key, ...] = ()
    must_not: tuple[dict[str, str], ...] = ()
    exit: int = 0
    stderr_has: tuple[str, ...] = ()
    now: str | None = None
    world: str = "world"
    rules: tuple[str, ...] = ()
    default_rules: bool = True
    max_age: float | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def inputs(self) -> Inputs:
        return Inputs(
            inventory=self.directory / "hosts", world=self.directory / self.world,
            rules=tuple(self.directory / rule_set for rule_set in self.rules),
            default_rules=self.default_rules, now=self.now, max_age=self.max_age,
            remediations=self.directory / "remediations.json",
        )


@dataclass
class ScenarioResult:
    directory: Path
    failures: list[str] = field(default_factory=list)
    evaluation: Evaluation | None = None
    rules: RuleSet | None = None

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def passed(self) -> bool:
        return not self.failures


def load_expectation(directory: Path) -> Expectation:
    path = directory / EXPECT_FILE
    document = load_yaml(path, str(path))
    if not isinstance(document.value, dict):
        raise InputError([document.problem((), "must be a mapping")])
    found = schemas.check("expect", document.value, document)
    if found:
        raise InputError(found)
    spec = document.value
    return Expectation(
        directory=directory,
        summary=spec.get("summary"),
        exact=spec.get("exact", False),
        must=tuple(tuple(item) for item in spec.get("must", [])),
        must_not=tuple(spec.get("must_not", [])),
        exit=spec.get("exit", 0),
        stderr_has=tuple(spec.get("stderr_has", [])),
        now=spec.get("now"),
        world=spec.get("world", "world"),
        rules=tuple(spec.get("rules", [])),
        default_rules=spec.get("default_rules", True),
        max_age=spec.get("max_age"),
        raw=spec,
    )


def run(directory: Path, *, extra_rules: tuple[Path, ...] = ()) -> ScenarioResult:
    """Evaluates one scenario and compares it with its expectation.

    A problem with the expectation itself (bad expect.yaml, or one naming things that do not
    exist in the scenario, which would pass vacuously) raises `SupervisorError`; so does a
    broken rule file, unless the scenario expects exit 2 and the file is its own: the rules
    under test are broken, which no expectation can say anything about.
    """
    expectation = load_expectation(directory)
    result = ScenarioResult(directory)
    inputs = expectation.inputs()
    if extra_rules:
        inputs = inputs._replace(rules=(*inputs.rules, *extra_rules))
    try:
        loaded, evaluation = evaluate_inputs(inputs)
    except SupervisorError as error:
        tested = extra_rules if expectation.exit == 2 else inputs.rule_sources()
        if any(_within(problem.file, tested) for problem in error.problems):
            raise
        stderr = "\n".join(str(problem) for problem in error.problems)
        if expectation.exit != 2:
            result.failures.append(f"exit 2, wanted {expectation.exit}: {stderr}")
        for text in expectation.stderr_has:
            if text.lower() not in stderr.lower():
                result.failures.append(f"errors lack {text!r}: {stderr}")
        return result
    if expectation.exit != 0:
        result.failures.append(f"evaluated without error, wanted exit {expectation.exit}")
        return result
    _check_vocabulary(expectation, loaded.state, loaded.rules)
    result.evaluation, result.rules = evaluation, loaded.rules
    result.failures.extend(compare(expectation, evaluation))
    return result


def compare(expectation: Expectation, evaluation: Evaluation) -> list[str]:
    failures = []
    got = {_key(r.to_json()) for r in evaluation.recommendations}
    if expectation.summary is not None and evaluation.summary != expectation.summary:
        failures.append(f"summary {evaluation.summary}, wanted {expectation.summary}")
    for key in expectation.must:
        if key not in got:
            failures.append(f"missing   {_show(key)}")
    if expectation.exact:
        for key in sorted(got - set(expectation.must)):
            failures.append(f"unexpected {_show(key)}")
    for index, forbidden in enumerate(expectation.must_not):
        for recommendation in evaluation.recommendations:
            key = _key(recommendation.to_json())
            if forbids(forbidden, key):
                shown = ", ".join(f"{name}: {value}" for name, value in forbidden.items())
                failures.append(f"forbidden {_show(key)} (must_not[{index}]: {{{shown}}})")
    return failures


def forbids(forbidden: dict[str, str], key: Key) -> bool:
    """Whether a `must_not` entry matches a recommendation."""
    _, subject, condition, event, action = key
    fields = {"subject": subject, "condition": condition, "event": event, "action": action}
    return all(fields[name] == value for name, value in forbidden.items())


def _within(file: str, sources: tuple[Path, ...] | list[Path]) -> bool:
    """Whether a problem's file is one of these rule sets' files."""
    return bool(file) and any(Path(file).is_relative_to(source) for source in sources)


def _key(recommendation: dict[str, Any]) -> Key:
    subject = recommendation["subject"]
    return (subject["kind"], subject["id"], recommendation["condition"],
            recommendation["event"], recommendation["action"])


def _show(key: Key) -> str:
    return "[" + ", ".join(key) + "]"


def _check_vocabulary(expectation: Expectation, state: State, rules: RuleSet) -> None:
    """An expectation about something that cannot exist would pass vacuously: refuse it."""
    subjects = {(s.kind, s.id) for kind in state.subjects.values() for s in kind}
    subject_ids = {subject_id for _, subject_id in subjects}
    actions = {rule.action for rule in rules.rules}
    display = str(expectation.directory / EXPECT_FILE)
    problems = []

    def unknown(where: str, what: str, value: str) -> None:
        problems.append(Problem(display, path=where, message=f"no {what} {value!r} in this scenario"))

    for index, (kind, subject_id, condition, event, action) in enumerate(expectation.must):
        where = f"must[{index}]"
        if (kind, subject_id) not in subjects:
            unknown(where, "subject", f"{kind} {subject_id}")
        if condition not in rules.conditions:
            unknown(where, "condition", condition)
        if event not in EVENT_TYPES:
            unknown(where, "event type", event)
        if action not in actions:
            unknown(where, "rule with action", action)
    for index, forbidden in enumerate(expectation.must_not):
        where = f"must_not[{index}]"
        if forbidden["subject"] not in subject_ids:
            unknown(where, "subject", forbidden["subject"])
        if "condition" in forbidden and forbidden["condition"] not in rules.conditions:
            unknown(where, "condition", forbidden["condition"])
        if "event" in forbidden and forbidden["event"] not in EVENT_TYPES:
            unknown(where, "event type", forbidden["event"])
        if "action" in forbidden and forbidden["action"] not in actions:
            unknown(where, "rule with action", forbidden["action"])
    if problems:
        raise InputError(problems)
