"""`supervisor test`: many scenarios, coverage of the rules, and JUnit XML."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from supervisor.errors import InputError, Problem, SupervisorError
from supervisor.scenarios import EXPECT_FILE, ScenarioResult, run
from supervisor.terminal import counted, printable


@dataclass
class Report:
    results: list[ScenarioResult] = field(default_factory=list)
    errors: dict[str, list[Problem]] = field(default_factory=dict)  # scenario label -> problems
    labels: dict[Path, str] = field(default_factory=dict)  # scenario directory -> its label
    rules: dict[str, str] = field(default_factory=dict)  # every enabled rule id seen -> its file
    fired: set[str] = field(default_factory=set)
    disabled: set[str] = field(default_factory=set)  # rule ids disabled in some scenario

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    def label(self, result: ScenarioResult) -> str:
        return self.labels.get(result.directory, result.name)

    def uncovered(self) -> list[str]:
        return sorted(set(self.rules) - self.fired)

    def coverage(self) -> float | None:
        """The percentage of enabled rules that fired somewhere; None when no scenario
        evaluated any rule (0 of 0 is not full coverage)."""
        if not self.rules:
            return None
        return 100.0 * (len(self.rules) - len(self.uncovered())) / len(self.rules)


def discover(roots: Iterable[Path]) -> list[Path]:
    """Scenario directories: each root that holds expect.yaml, else its children that do."""
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise InputError([Problem(str(root), message="scenario directory does not exist")])
        if (root / EXPECT_FILE).is_file():
            found.append(root)
        else:
            found.extend(sorted(path.parent for path in root.glob(f"*/{EXPECT_FILE}")))
    if not found:
        shown = ", ".join(str(root) for root in roots)
        raise InputError([Problem(shown, message=f"holds no scenarios (directories with {EXPECT_FILE})")])
    unique: dict[Path, Path] = {}  # a scenario named twice (`fixtures fixtures/x`) runs once
    for directory in found:
        unique.setdefault(directory.resolve(), directory)
    return list(unique.values())


def labels(directories: list[Path]) -> dict[Path, str]:
    """A name per scenario: its directory's name, with as many parent directories as it takes
    to tell apart scenarios of the same name in different places."""
    parts = {directory: directory.absolute().parts for directory in directories}
    depth = dict.fromkeys(directories, 1)
    while True:
        names: dict[tuple[str, ...], list[Path]] = {}
        for directory in directories:
            names.setdefault(parts[directory][-depth[directory]:], []).append(directory)
        clashing = [d for same in names.values() if len(same) > 1 for d in same
                    if depth[d] < len(parts[d])]
        if not clashing:
            return {d: "/".join(parts[d][-depth[d]:]).removeprefix("//") for d in directories}
        for directory in clashing:
            depth[directory] += 1


def run_all(directories: list[Path], *, extra_rules: tuple[Path, ...] = ()) -> Report:
    report = Report(labels=labels(directories))
    for directory in directories:
        try:
            result = run(directory, extra_rules=extra_rules)
        except SupervisorError as error:
            report.errors[report.labels[directory]] = error.problems
            continue
        report.results.append(result)
        if result.rules is not None:
            report.rules.update({rule.id: rule.file for rule in result.rules.rules if rule.enabled})
            report.disabled.update(rule.id for rule in result.rules.rules if not rule.enabled)
        if result.evaluation is not None:
            report.fired.update(r.rule for r in result.evaluation.recommendations)
    return report


def render(report: Report) -> str:
    lines = []
    for result in report.results:
        lines.append(f"{'ok  ' if result.passed else 'FAIL'} {printable(report.label(result))}")
        lines.extend(f"       {printable(failure)}" for failure in result.failures)
    for name, problems in report.errors.items():
        lines.append(f"ERROR {printable(name)}")
        lines.extend(f"       {printable(str(problem))}" for problem in problems)
    closing = f"{report.passed} passed, {report.failed} failed"
    if report.errors:
        closing += f", {counted(len(report.errors), 'error')}"
    lines.append(closing)
    return "\n".join(lines) + "\n"


def render_coverage(report: Report) -> str:
    coverage = report.coverage()
    if coverage is None:
        return "rule coverage: none (no scenario evaluated any rule)\n"
    fired = len(report.rules) - len(report.uncovered())
    disabled = report.disabled - set(report.rules)  # disabled in every scenario
    headline = (f"rule coverage: {coverage:.0f}% ({fired} of {counted(len(report.rules), 'rule')}"
                f" fired{f'; {len(disabled)} disabled, not counted' if disabled else ''})")
    lines = [headline]
    lines.extend(f"  never fired: {rule} ({short_path(report.rules[rule])})"
                 for rule in report.uncovered())
    return "\n".join(lines) + "\n"


def short_path(file: str) -> str:
    """A rule file as a person would name it: the built-in rules by their name, others from
    the current directory when inside it."""
    from supervisor.rules import default_rules_dir

    path = Path(file)
    if path.is_relative_to(default_rules_dir()):
        return f"built-in {path.relative_to(default_rules_dir()).as_posix()}"
    try:
        return Path(os.path.relpath(path)).as_posix() if path.is_absolute() and \
            path.is_relative_to(Path.cwd()) else file
    except ValueError:
        return file


def write_junit(report: Report, path: Path) -> None:
    # XML 1.0 cannot hold most control characters at all: escaped as in the terminal.
    suite = ET.Element("testsuite", name="supervisor scenarios", tests=str(
        len(report.results) + len(report.errors)), failures=str(report.failed),
        errors=str(len(report.errors)))
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname="scenarios",
                             name=printable(report.label(result)))
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=printable(result.failures[0]))
            failure.text = "\n".join(printable(text) for text in result.failures)
    for name, problems in report.errors.items():
        case = ET.SubElement(suite, "testcase", classname="scenarios", name=printable(name))
        error = ET.SubElement(case, "error", message=printable(str(problems[0])))
        error.text = "\n".join(printable(str(problem)) for problem in problems)
    ET.indent(suite)
    path.write_bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n")
