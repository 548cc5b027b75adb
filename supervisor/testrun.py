"""`supervisor test`: many scenarios, coverage of the rules, JUnit XML, and snapshot updates."""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from supervisor.errors import InputError, Problem, SupervisorError
from supervisor.scenarios import EXPECT_FILE, ScenarioResult, run


@dataclass
class Report:
    results: list[ScenarioResult] = field(default_factory=list)
    errors: dict[str, list[Problem]] = field(default_factory=dict)  # scenario -> problems
    rules: dict[str, str] = field(default_factory=dict)  # every rule id seen -> its file
    fired: set[str] = field(default_factory=set)

    @property
    def passed(self) -> int:
        return sum(result.passed for result in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    def uncovered(self) -> list[str]:
        return sorted(set(self.rules) - self.fired)

    def coverage(self) -> float:
        return 100.0 * (len(self.rules) - len(self.uncovered())) / len(self.rules) if self.rules else 100.0


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
    return found


def run_all(directories: list[Path], *, extra_rules: tuple[Path, ...] = ()) -> Report:
    report = Report()
    for directory in directories:
        try:
            result = run(directory, extra_rules=extra_rules)
        except SupervisorError as error:
            report.errors[directory.name] = error.problems
            continue
        report.results.append(result)
        if result.rules is not None:
            report.rules.update({rule.id: rule.file for rule in result.rules.rules})
        if result.evaluation is not None:
            report.fired.update(r.rule for r in result.evaluation.recommendations)
    return report


def render(report: Report) -> str:
    lines = []
    for result in report.results:
        lines.append(f"{'ok  ' if result.passed else 'FAIL'} {result.name}")
        lines.extend(f"       {failure}" for failure in result.failures)
    for name, problems in report.errors.items():
        lines.append(f"ERROR {name}")
        lines.extend(f"       {problem}" for problem in problems)
    closing = f"{report.passed} passed, {report.failed} failed"
    if report.errors:
        closing += f", {len(report.errors)} errors"
    lines.append(closing)
    return "\n".join(lines) + "\n"


def render_coverage(report: Report) -> str:
    lines = [(f"rule coverage: {report.coverage():.0f}% "
             f"({len(report.rules) - len(report.uncovered())} of {len(report.rules)} rules fired)")]
    lines.extend(f"  never fired: {rule} ({report.rules[rule]})" for rule in report.uncovered())
    return "\n".join(lines) + "\n"


def write_junit(report: Report, path: Path) -> None:
    suite = ET.Element("testsuite", name="supervisor scenarios", tests=str(
        len(report.results) + len(report.errors)), failures=str(report.failed),
        errors=str(len(report.errors)))
    for result in report.results:
        case = ET.SubElement(suite, "testcase", classname="scenarios", name=result.name)
        if not result.passed:
            failure = ET.SubElement(case, "failure", message=result.failures[0])
            failure.text = "\n".join(result.failures)
    for name, problems in report.errors.items():
        case = ET.SubElement(suite, "testcase", classname="scenarios", name=name)
        error = ET.SubElement(case, "error", message=str(problems[0]))
        error.text = "\n".join(str(problem) for problem in problems)
    ET.indent(suite)
    path.write_bytes(ET.tostring(suite, encoding="utf-8", xml_declaration=True) + b"\n")


def update(result: ScenarioResult) -> str:
    """Writes the evaluation into expect.yaml as the new expectation; returns the diff."""
    if result.evaluation is None:
        return ""
    path = result.directory / EXPECT_FILE
    old_text = path.read_text(encoding="utf-8")
    spec = yaml.safe_load(old_text) or {}
    spec["summary"] = result.evaluation.summary
    spec["exact"] = True
    spec["must"] = [
        [r.subject.kind, r.subject.id, r.condition, r.event, r.action]
        for r in result.evaluation.recommendations
    ]
    new_text = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    if new_text == old_text:
        return ""
    path.write_text(new_text, encoding="utf-8")
    return "".join(difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=f"{path} (before)", tofile=f"{path} (after)"))
