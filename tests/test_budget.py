"""The evaluation budget (issue 11, item 12): a rule whose work is a product of list lengths is
stopped and named, with its file and line; lint warns about nested projections."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.scenarios import ScenarioFactory, evaluate_dir
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.compiler import Budget, OverBudget
from supervisor.engine import evaluate
from supervisor.errors import RuleError
from supervisor.inputs import Inputs, load
from supervisor.limits import Limits
from supervisor.lint import lint
from supervisor.rules import load_rules

# Three projections nested over every service of the node: 1,000 services make 10^9 steps.
CUBIC = """rules:
  - id: cubic
    subject: node
    condition: unhealthy_service
    match: >-
      length(attach(services, {all: services})[?
        length(attach(all, {again: all})[?length(again[?id == 'nope']) > `0`]) > `0`]) > `0`
    event: reconcile_recommended
    action: look
"""


def big_node(scenario: ScenarioFactory, count: int) -> Path:
    services = "".join(f"  s{index}: {{}}\n" for index in range(count))
    return scenario({"n1": "services:\n" + services})


def rules_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules" / "cubic.yaml"
    path.parent.mkdir()
    path.write_text(text)
    return path


def test_a_cubic_matcher_is_stopped_and_named(scenario: ScenarioFactory, tmp_path: Path) -> None:
    root = big_node(scenario, 1000)
    rules = rules_file(tmp_path, CUBIC)
    with pytest.raises(RuleError) as caught:
        evaluate_dir(root, rules=(rules,), default_rules=False)
    (problem,) = caught.value.problems
    assert str(problem).startswith(
        f"{rules}:5:12: rules[0].match: rule 'cubic': failed on node n1: stopped: the rule's "
        "work exceeds its budget of 1000000 steps per subject (projections nested over large "
        "lists?); raise SUPERVISOR_MAX_RULE_STEPS if that is right")


def test_the_budget_over_all_subjects(scenario: ScenarioFactory, tmp_path: Path) -> None:
    # Each of 100 services spends 100 steps: within 1,000 per subject, beyond 5,000 in all.
    root = scenario({"n1": "services:\n" + "".join(f"  s{i}: {{}}\n" for i in range(100))})
    rules = rules_file(tmp_path, """rules:
  - id: hundred-steps
    condition: unhealthy_service
    match: "length(attach(node_services, {x: `1`})) > `0`"
    event: reconcile_recommended
    action: look
""".replace("node_services", "`" + "[" + ",".join(["1"] * 100) + "]" + "`"))
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world", rules=(rules,),
                         default_rules=False))
    assert evaluate(loaded.state, loaded.rules, limits=Limits(rule_steps=1000)).recommendations
    with pytest.raises(RuleError, match=r"steps left of its budget over all subjects .*"
                       r"raise SUPERVISOR_MAX_RULE_STEPS_TOTAL"):
        evaluate(loaded.state, loaded.rules,
                 limits=Limits(rule_steps=1000, rule_steps_total=5000))


def test_budget_counts_steps() -> None:
    budget = Budget(10, total=15)
    budget.spend(10)
    with pytest.raises(OverBudget) as caught:
        budget.spend(1)
    assert (caught.value.steps, caught.value.total) == (10, False)
    budget.renew()  # the last subject used 11 of the 15 in all: 4 are left
    budget.spend(4)
    with pytest.raises(OverBudget) as caught:
        budget.spend(1)
    assert (caught.value.steps, caught.value.total) == (4, True)


def test_validate_strict_is_bounded_and_says_why(scenario: ScenarioFactory,
                                                 tmp_path: Path) -> None:
    root = big_node(scenario, 1000)
    rules = rules_file(tmp_path, CUBIC)
    result = CliRunner().invoke(app, ["validate", str(root), "--rules", str(rules.parent),
                                      "--no-default-rules", "--strict"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (f"{rules}:5:12: rules[0].match: rule 'cubic': projections nested 2 deep: "
                        "the work is the product of the lists' lengths, unbounded as they "
                        "grow; evaluation stops at the rule's budget (SUPERVISOR_MAX_RULE_STEPS "
                        "steps per subject)")
    assert "exceeds its budget of 1000000 steps" in lines[1]


def test_lint_leaves_chains_and_single_filters_alone(tmp_path: Path) -> None:
    rules = rules_file(tmp_path, """rules:
  - id: chain
    subject: node
    condition: unhealthy_service
    match: "services[*].desired.depends_on[*] && services[?actual.status != 'ok']"
    event: reconcile_recommended
    action: look
  - id: two-deep
    subject: node
    condition: unhealthy_service
    match: "attach(services, {all: services})[?length(all[?id == 'x']) > `0`]"
    event: reconcile_recommended
    action: look
""")
    found = [str(problem) for problem in lint(load_rules([rules]))]
    assert [problem.split(": rule ")[1][:40] for problem in found] == [
        "'two-deep': projections nested 2 deep: t"]


@pytest.mark.parametrize(("steps", "total"), [(1000, 10**9), (3, 10**9), (5, 40), (1000, 13),
                                              (2, 2)])
def test_the_batch_spends_the_budget_as_the_closures_do(
        scenario: ScenarioFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        steps: int, total: int) -> None:
    """Function calls on lists that the batch settles charge each subject, in order, with what
    the closure would have spent: the same recommendations, or the same failure."""
    from support.scenarios import ok

    from supervisor import engine
    from supervisor.batch import DEFER

    hosts = {f"n{node}": "services:\n" + "".join(f"  s{index}: {{}}\n" for index in range(6))
             for node in range(3)}
    tags = {f"n{node}/s{index}": {**ok(), "tags": ["t"] * ((node * 6 + index) % 5)}
            for node in range(3) for index in range(6)}
    root = scenario(hosts, services=tags)
    rules = rules_file(tmp_path, """rules:
  - id: tagged
    condition: unhealthy_service
    match: "service.desired != null && length(service.actual.tags) >= `3`"
    event: reconcile_recommended
    action: look
    reason: "{{ service.id }} has {{ length(service.actual.tags) }} tags"
""")
    loaded = load(Inputs(inventory=root / "hosts", world=root / "world", rules=(rules,),
                         default_rules=False))

    def outcome() -> object:
        try:
            return evaluate(loaded.state, loaded.rules,
                            limits=Limits(rule_steps=steps, rule_steps_total=total)).to_json()
        except RuleError as error:
            return [str(problem) for problem in error.problems]

    batched = outcome()
    if (steps, total) == (1000, 10**9):  # within budget: the six services with 3 or 4 tags
        assert isinstance(batched, dict) and len(batched["recommendations"]) == 6
    monkeypatch.setattr(engine, "compile_batch",
                        lambda ast, functions: lambda table: [DEFER] * len(table))
    assert outcome() == batched
