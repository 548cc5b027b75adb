"""Policy files: loading, layering, and every problem reported with its place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from supervisor.errors import InputError
from supervisor.remediation.executor import NAMES
from supervisor.remediation.policy import Limits, load_policies
from supervisor.resources import data_dir

GOOD = """\
limits: {per_run: 2, cooldown: 120}
maintenance:
  - id: sunday
    weekly: {days: [sun], start: "02:00", end: "04:00", timezone: Europe/Berlin}
policies:
  - id: start-apps
    match: "recommendation.action == 'redeploy' && service.desired.labels.tier == 'app'"
    executor: docker
    args: {operation: start}
    verify_within: 90
  - id: script
    match: "recommendation.condition == 'missing_service'"
    executor: command
    args: {argv: [/usr/local/bin/deploy, "{{ service.node }}", "{{ service.name }}"]}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text)
    return directory


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_policies([write(tmp_path / "policy", "p.yaml", text)])
    return [str(problem) for problem in caught.value.problems]


def test_a_good_policy_set(tmp_path: Path) -> None:
    policies = load_policies([write(tmp_path / "policy", "p.yaml", GOOD)])
    assert [p.id for p in policies.policies] == ["start-apps", "script"]
    assert policies.limits == Limits(per_run=2, cooldown=120)
    assert policies.verify_within(policies.policies[0]) == 90
    assert policies.verify_within(policies.policies[1]) == Limits().verify_within
    assert policies.policies[0].line == 6
    (window,) = policies.windows
    assert window.weekly is not None and str(window.weekly.zone) == "Europe/Berlin"


def test_layering_needs_override(tmp_path: Path) -> None:
    first = write(tmp_path / "a", "p.yaml", GOOD)
    second = write(tmp_path / "b", "p.yaml", "limits: {per_run: 3}\npolicies:\n"
                   "  - {id: script, match: 'false', executor: command, args: {argv: [/bin/true]}}\n")
    with pytest.raises(InputError) as caught:
        load_policies([first, second])
    assert str(caught.value.problems[0]) == (
        f"{second}/p.yaml:3:10: policies[0].id: policy id 'script' is already defined in "
        f"{first}/p.yaml (say 'override: true' to replace it)")
    (second / "p.yaml").write_text((second / "p.yaml").read_text().replace(
        "id: script,", "id: script, override: true,"))
    layered = load_policies([first, second])
    assert [p.match for p in layered.policies] == [layered.policies[0].match, "false"]
    assert layered.limits.per_run == 3 and layered.limits.cooldown == 120


@pytest.mark.parametrize(("text", "expected"), [
    ("policies:\n  - {id: x, match: 'a ==', executor: command, args: {argv: [/bin/true]}}\n",
     "p.yaml:2:20: policies[0].match: invalid JMESPath"),
    ("policies:\n  - {id: x, match: 'true', executor: shell}\n",
     "p.yaml:2:38: policies[0].executor: string \"shell\" is not one of: docker, command"),
    ("policies:\n  - {id: x, match: 'true', executor: command, args: {argv: [restart.sh]}}\n",
     "p.yaml:2:61: policies[0].args.argv[0]: the program must be an absolute path"),
    ("policies:\n  - {id: x, match: 'true', executor: command, args: {argv: [/bin/x], timeout: 0}}\n",
     "p.yaml:2:79: policies[0].args.timeout: must be a number of seconds"),
    ("policies:\n  - {id: x, match: 'true', executor: docker, args: {operation: kill}}\n",
     "p.yaml:2:64: policies[0].args.operation: must be one of: auto, start, restart"),
    ("policies:\n  - {id: x, match: 'true', executor: docker, args: {container: '{{ nope( }}'}}\n",
     "p.yaml:2:64: policies[0].args.container: invalid JMESPath"),
    ("policies:\n  - {id: x, match: 'true', executor: docker, args: {contianer: web}}\n",
     "policies[0].args.contianer: unknown argument 'contianer'"),
    ("polices: []\n", "p.yaml:1:1: polices: unknown key 'polices' (did you mean 'policies'?)"),
    (("maintenance:\n  - {id: w, weekly: {days: [sun], start: '02:00', end: '04:00', "
     "timezone: Mars/Olympus}}\n"), "maintenance[0].weekly.timezone: unknown time zone"),
    ("maintenance:\n  - {id: w, from: '2026-12-01T06:00:00Z', until: '2026-12-01T05:00:00Z'}\n",
     "maintenance[0].until: must be later than 'from'"),
    (("maintenance:\n  - {id: w, weekly: {days: [sun], start: '2:00', end: '04:00', "
     "timezone: UTC}}\n"), "maintenance[0].weekly.start: value '2:00' does not match"),
    (("policies:\n  - {id: x, match: 'true', executor: command, args: {argv: [/bin/x]}}\n"
     "  - {id: x, match: 'true', executor: command, args: {argv: [/bin/x]}}\n"),
     "p.yaml:3:10: policies[1].id: policy id 'x' is already defined"),
])
def test_problems_say_where(tmp_path: Path, text: str, expected: str) -> None:
    found = problems(tmp_path, text)
    assert any(expected in problem for problem in found), found


def test_every_problem_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, "policies:\n"
                     "  - {id: a, match: 'a ==', executor: command, args: {argv: [x]}}\n"
                     "  - {id: b, match: 'true', executor: docker, args: {operation: kill}}\n")
    assert len(found) == 3, found


def test_a_missing_policy_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load_policies([tmp_path / "nowhere"])
    assert "policy directory does not exist" in str(caught.value)


def test_the_schema_names_the_registered_executors() -> None:
    schema = json.loads((data_dir("schemas") / "policy.schema.json").read_text())
    assert sorted(schema["$defs"]["policy"]["properties"]["executor"]["enum"]) == sorted(NAMES)
    from supervisor.remediation.executor import EXECUTORS

    assert sorted(EXECUTORS[name].__class__.__name__.lower() for name in NAMES) == sorted(NAMES)


def test_every_policy_example_in_the_docs_loads(tmp_path: Path) -> None:
    import re

    from support.scenarios import ROOT

    text = (ROOT / "docs" / "remediation.md").read_text()
    examples = [block for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
                if "policies:" in block]
    assert len(examples) == 2
    for index, example in enumerate(examples):
        loaded = load_policies([write(tmp_path / str(index), "p.yaml", example)])
        assert loaded.policies


def test_weekly_windows_in_their_time_zone(tmp_path: Path) -> None:
    from datetime import datetime

    from supervisor.remediation.guardrails import in_window, window_end
    from supervisor.timestamps import parse_time

    text = ("maintenance:\n  - {id: night, weekly: {days: [sat], start: '23:00', end: '02:00', "
            "timezone: America/New_York}}\n")
    (window,) = load_policies([write(tmp_path / "policy", "p.yaml", text)]).windows

    def at(moment: str) -> datetime:
        return parse_time(moment)

    # Saturday 28 November 2026, 23:30 in New York is Sunday 04:30 UTC.
    assert in_window(window, at("2026-11-29T04:30:00Z"))
    assert window_end(window, at("2026-11-29T04:30:00Z")) == at("2026-11-29T07:00:00Z")
    assert in_window(window, at("2026-11-29T06:59:00Z"))  # Sunday 01:59 local: still open
    assert not in_window(window, at("2026-11-29T07:00:00Z"))
    assert not in_window(window, at("2026-11-28T04:30:00Z"))  # Friday night: not a Saturday
