"""The test suite's own rules: it runs from a fresh clone alone, the same on any machine, and a
quick local run can leave out the slow part while CI runs everything."""

from __future__ import annotations

import re
import tomllib

from support.compliance import SUITE, groups
from support.scenarios import ROOT

TESTS = ROOT / "tests"


def test_the_compliance_cases_are_carried_with_their_licence() -> None:
    assert SUITE.is_relative_to(TESTS)
    results = [case for _, group in groups() for case in group["cases"] if "result" in case]
    assert len(results) >= 742
    readme = (SUITE / "README.md").read_text()
    assert "MIT" in readme and "LICENSE" in readme
    assert "Permission is hereby granted" in (SUITE / "LICENSE").read_text()


def test_no_test_reads_a_directory_outside_the_repository() -> None:
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "test_suite.py":
            continue  # the patterns below
        text = path.read_text()
        assert not re.search(r"\.\./shared|\"shared\"|shared/data|parents\[[3-9]\]", text), path


def test_helpers_are_imported_from_support_never_from_conftest() -> None:
    for path in sorted(TESTS.rglob("*.py")):
        assert not re.search(r"^\s*(from|import) conftest\b", path.read_text(), re.MULTILINE), path
    conftest = (TESTS / "conftest.py").read_text()
    assert re.findall(r"^def (\w+)", conftest, re.MULTILINE) == ["scenario"]  # fixtures only


def test_slow_tests_are_marked_and_ci_runs_them() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert any(marker.startswith("slow:") for marker in options["markers"])
    assert "--strict-markers" in options["addopts"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r'^"\$venv/pytest" \|\|', ci, re.MULTILINE)  # every test, no -m filter
    assert 'pytest -m "not slow"' in (ROOT / "README.md").read_text()


def test_fuzzing_is_counted_in_cases_not_seconds() -> None:
    fuzz = (TESTS / "test_fuzz.py").read_text()
    assert "SUPERVISOR_FUZZ_CASES" in fuzz and "SUPERVISOR_FUZZ_SECONDS" not in fuzz
