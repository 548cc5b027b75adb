"""Golden scenarios: every directory under fixtures/ evaluates to what its expect.yaml says."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scenarios import FIXTURES

from supervisor.errors import InputError
from supervisor.scenarios import run

SCENARIOS = sorted(path.parent for path in FIXTURES.glob("*/expect.yaml"))


def test_there_are_scenarios_for_every_condition() -> None:
    assert len(SCENARIOS) >= 20


@pytest.mark.parametrize("directory", SCENARIOS, ids=[d.name for d in SCENARIOS])
def test_scenario(directory: Path) -> None:
    result = run(directory)
    assert result.failures == []


def test_default_rules_all_fire_somewhere() -> None:
    fired = {r.rule for d in SCENARIOS if (o := run(d)).evaluation
             for r in o.evaluation.recommendations}
    rules = next(o.rules for d in SCENARIOS if (o := run(d)).rules is not None)
    assert fired == {rule.id for rule in rules.rules}


def copy_scenario(tmp_path: Path, name: str, expect: str) -> Path:
    import shutil

    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target)
    (target / "expect.yaml").write_text(expect)
    return target


def test_a_wrong_expectation_fails(tmp_path: Path) -> None:
    directory = copy_scenario(tmp_path, "missing-service", (
        "summary: nominal\nexact: true\nmust: []\n"))
    result = run(directory)
    assert result.failures[0] == "summary degraded, wanted nominal"
    assert result.failures[1].startswith("unexpected [service, ")


def test_an_expectation_about_nothing_is_an_error_not_a_pass(tmp_path: Path) -> None:
    directory = copy_scenario(tmp_path, "missing-service", (
        "must_not:\n- {subject: n9/ghost, action: redeploy}\n"
        "- {subject: app01/miniflux, condition: unhealthy_servce}\n"))
    with pytest.raises(InputError) as caught:
        run(directory)
    messages = [str(p) for p in caught.value.problems]
    assert any("no subject 'n9/ghost' in this scenario" in m for m in messages)
    assert any("no condition 'unhealthy_servce'" in m for m in messages)
    assert len(messages) == 2


def test_bad_expect_file_is_reported(tmp_path: Path) -> None:
    directory = copy_scenario(tmp_path, "missing-service", "sumary: nominal\n")
    with pytest.raises(InputError, match="unknown key 'sumary'"):
        run(directory)
