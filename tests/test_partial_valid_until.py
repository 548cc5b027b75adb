"""A run --once that takes up the last evaluation writes what it writes with the cache off,
its checkpoint's `valid_until` included, as failures start and end, the clock moves on (to
the very moment a threshold is reached), random records are rewritten, and a rule's work
over all subjects nears its budget."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.scenarios import ROOT

from supervisor import cache
from supervisor.errors import SupervisorError
from supervisor.inputs import Inputs
from supervisor.manifest import Fresh
from supervisor.timestamps import format_time, parse_time
from supervisor.transitions import Paths, run_once

HOMELAB = ROOT / "fixtures" / "homelab"
T0 = parse_time("2026-11-26T10:00:30Z")

Step = Callable[[Path], None]


def rewrite(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def record(lab: Path, subject: str, **fields: object) -> None:
    path = (lab / "world" / "services" / f"{subject}.json" if "/" in subject
            else lab / "world" / "nodes" / f"{subject}.json")
    found = json.loads(path.read_text()) if path.exists() else {}
    found.update(fields)
    rewrite(path, json.dumps(found))


def written(paths: Paths) -> str:
    checkpoint = json.loads(paths.checkpoint.read_text())
    del checkpoint["log_tail"]
    return re.sub(r'"run_id":"\w+"', "", paths.events.read_text()) + json.dumps(checkpoint)


def compare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setup: Step,
            steps: list[tuple[Step, datetime]], rules: str | None = None,
            now: bool = False, remediations: bool = False) -> list[bool]:
    """Each step's writes with the cache on equal those with it off; whether each on-run took
    up the last evaluation."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab, state = tmp_path / "lab", tmp_path / "state"
    outputs: dict[str, list[str]] = {}
    resumed: list[bool] = []
    for caching in ("on", "off"):
        monkeypatch.setenv("SUPERVISOR_CACHE", caching)
        shutil.copytree(HOMELAB, lab)
        state.mkdir()
        rule_files: tuple[Path, ...] = ()
        if rules is not None:
            rewrite(lab / "rules" / "extra.yaml", rules)
            rule_files = (lab / "rules",)
        setup(lab)
        paths = Paths(events=state / "events.log", checkpoint=state / "checkpoint.json")
        outputs[caching] = []
        for index, (step, clock) in enumerate([(lambda lab: None, T0), *steps]):
            step(lab)
            inputs = Inputs(inventory=lab / "hosts", world=lab / "world", rules=rule_files,
                            now=format_time(clock) if now else None,
                            remediations=lab / "remediations.json" if remediations else None)
            source = Fresh()
            try:
                run_once(inputs, paths, source=source, clock=lambda clock=clock: clock,
                         warn=lambda line: None)
                outputs[caching].append(written(paths))
            except SupervisorError as error:  # exit 2, nothing written
                outputs[caching].append(str(error))
            if caching == "on" and index:
                resumed.append(source.resumed)
        shutil.rmtree(lab)
        shutil.rmtree(state)
    for index, (on, off) in enumerate(zip(outputs["on"], outputs["off"], strict=True)):
        assert on == off, f"step {index}"
    return resumed


AGED = """\
rules:
  - id: failing-long
    condition: unhealthy_service
    match: "service.actual.status == 'failed' && age_seconds(service.actual.since) > `600`"
    event: reconcile_recommended
    action: investigate
    reason: "{{ subject.id }} failing"
"""


def test_a_run_taking_up_an_evaluation_holds_it_until_what_a_full_one_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last evaluation holds until a failure times out (10:02:10, redis's and postgres's);
    each failure ends in turn: the run after the first still holds it until then (postgres's),
    the run after the second until what the rest say, as a full evaluation does."""
    failing = format_time(T0 - timedelta(seconds=500))

    def setup(lab: Path) -> None:
        record(lab, "nas01/redis", status="failed", since=failing)
        record(lab, "nas01/postgres", status="failed", since=failing)

    resumed = compare(tmp_path, monkeypatch, setup, [
        (lambda lab: record(lab, "nas01/redis", status="ok"), T0 + timedelta(seconds=10)),
        (lambda lab: record(lab, "nas01/postgres", status="ok"), T0 + timedelta(seconds=20)),
        (lambda lab: record(lab, "lab01/uptime-kuma", status="failed", since=failing),
         T0 + timedelta(seconds=30)),
    ], rules=AGED)
    assert resumed == [True, False, True]


NOW_READ = """\
rules:
  - id: half-past
    condition: unhealthy_service
    match: "contains(now, ':00:3') && service.actual != `null`"
    event: reconcile_recommended
    action: investigate
    reason: "{{ subject.id }} evaluated at half past"
"""


def test_a_matcher_reading_now_itself_is_evaluated_everywhere_when_the_clock_moves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No time function sees the moment it stops matching, so `valid_until` cannot say."""
    resumed = compare(tmp_path, monkeypatch, lambda lab: None, [
        (lambda lab: record(lab, "nas01/redis", status="failed"), T0 + timedelta(seconds=15)),
        (lambda lab: record(lab, "nas01/redis", status="ok"), T0 + timedelta(seconds=15)),
    ], rules=NOW_READ)
    assert resumed == [False, True]  # at the same time, taken up all the same


STALE = """\
rules:
  - id: stale-soon
    subject: world
    condition: stale_world
    match: "age_seconds(world.observed_at) > `120`"
    event: reconcile_recommended
    action: investigate
    reason: "the world is old"
"""


def test_an_evaluation_on_the_moment_a_threshold_is_reached_holds_no_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At 10:02:00 the world, observed at 10:00:00, is 120 s old: not older than 120 s, as it
    is a moment later; the evaluation then holds until that moment, not until the next one."""
    at_the_limit = parse_time("2026-11-26T10:02:00Z")
    resumed = compare(tmp_path, monkeypatch, lambda lab: None, [
        (lambda lab: record(lab, "nas01/redis", status="failed"), at_the_limit),
        (lambda lab: record(lab, "nas01/redis", status="ok"), at_the_limit
         + timedelta(seconds=5)),
    ], rules=STALE)
    assert resumed == [False, False]


@pytest.mark.parametrize("caching", ["on", "off"])
def test_an_evaluation_on_the_moment_a_threshold_is_reached_holds_at_that_moment(
        caching: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluated again at the very same moment (a fixed `--now`), it is the same evaluation:
    the run finds nothing new. A microsecond later the world is older than 120 s."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    monkeypatch.setenv("SUPERVISOR_CACHE", caching)
    lab = tmp_path / "lab"
    shutil.copytree(HOMELAB, lab)
    rewrite(lab / "rules" / "extra.yaml", STALE)
    inputs = Inputs(inventory=lab / "hosts", world=lab / "world", rules=(lab / "rules",),
                    now="2026-11-26T10:02:00Z")
    paths = Paths(events=tmp_path / "events.log", checkpoint=tmp_path / "checkpoint.json")
    assert not run_once(inputs, paths).skipped
    assert run_once(inputs, paths).skipped
    assert "stale_world" not in paths.events.read_text()
    later = run_once(inputs._replace(now="2026-11-26T10:02:00.000001Z"), paths)
    assert not later.skipped and "stale_world" in paths.events.read_text()


# Random records rewritten, on a lab with subjects known from one place only, a remediation
# history with maintenance windows, and rules that read other subjects' documents and the time.

EXTRA = """\
rules:
  - id: failing-long
    condition: unhealthy_service
    match: "service.actual.status == 'failed' && age_seconds(service.actual.since) > `600`"
    event: reconcile_recommended
    action: investigate
    reason: "{{ subject.id }} failing for {{ duration(age_seconds(service.actual.since)) }}"
  - id: node-many-failing
    subject: node
    condition: unhealthy_service
    match: "length(services[?actual.status == 'failed']) > `1`"
    event: reconcile_recommended
    action: investigate
    reason: "{{ subject.id }}: {{ services[?actual.status == 'failed'].id }}"
    overrules:
      subjects: hosted_services
      actions: [investigate]
  - id: host-offline-dependency
    condition: dependency_unavailable
    match: "length(dependencies[?host.actual.status == 'offline' || actual.restarts > `2`]) > `0`"
    event: reconcile_recommended
    action: investigate
    reason: >-
      {{ subject.id }} waits on
      {{ dependencies[?host.actual.status == 'offline' || actual.restarts > `2`].id }} at {{ now }}
  - id: world-old
    subject: world
    condition: stale_world
    match: "age_seconds(world.observed_at) > `120`"
    event: reconcile_recommended
    action: investigate
    reason: "world {{ duration(age_seconds(world.observed_at)) }} old"
    overrules:
      subjects: all
      actions: [redeploy]
"""
STATUSES = ["ok", "failed", "degraded", "stopped", "starting"]


def odd_subjects(lab: Path) -> None:
    """A node and a service known from the world only, a service from a deployment only, one
    from an incident only; a remediation history, with maintenance windows ending."""
    world = lab / "world"
    rewrite(world / "nodes" / "ghost.json",
            json.dumps({"status": "online", "last_seen": "2026-11-26T09:59:00Z"}))
    rewrite(world / "services" / "ghost" / "svc.json",
            json.dumps({"status": "ok", "since": "2026-11-26T09:00:00Z"}))
    rewrite(world / "deployments" / "dep-x.json", json.dumps({
        "id": "dep-x", "service": "lab01/phantom", "status": "failed",
        "started_at": "2026-11-26T09:50:00Z", "finished_at": "2026-11-26T09:51:00Z"}))
    rewrite(world / "incidents" / "inc-x.json", json.dumps({
        "id": "inc-x", "subject": "edge01/ghostly", "status": "open", "severity": "critical",
        "opened_at": "2026-11-26T09:00:00Z", "title": "unreachable"}))
    history = json.loads(
        (HOMELAB.parent / "remediation-failures-repeated" / "remediations.json").read_text())
    history["subjects"]["nas01/redis"] = history["subjects"]["media01/radarr"]
    history["maintenance"] = {"nas01/redis": {"window": "w1", "until": "2026-11-26T10:01:00Z"},
                              "media01": {"window": "w2", "until": "2026-11-26T10:05:00Z"}}
    rewrite(lab / "remediations.json", json.dumps(history))


def observed(seed: int) -> Step:
    """An observer rewriting one to three records, the same ones on every call."""
    def step(lab: Path) -> None:
        rng = random.Random(seed)
        world = lab / "world"
        for _ in range(rng.choice([1, 1, 2, 3])):
            fields: dict[str, object]
            if rng.random() < 0.3:
                subject = rng.choice(sorted((world / "nodes").glob("*.json"))).stem
                fields = {"status": rng.choice(["online", "offline"])}
                if rng.random() < 0.5:
                    fields["last_seen"] = format_time(
                        T0 - timedelta(seconds=rng.choice([30, 500, 700, -400])))
            else:
                path = rng.choice(sorted((world / "services").glob("*/*.json")))
                subject = f"{path.parent.name}/{path.stem}"
                fields = {"status": rng.choice(STATUSES), "restarts": rng.randint(0, 4)}
                if rng.random() < 0.5:
                    fields["since"] = format_time(
                        T0 - timedelta(seconds=rng.choice([100, 550, 700, 3000])))
            record(lab, subject, **fields)
    return step


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("fixed", [False, True], ids=["clock", "now"])
def test_random_records_rewritten_as_the_clock_moves(
        seed: int, fixed: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    clock = T0
    steps = []
    for _ in range(10):
        clock += timedelta(seconds=rng.choice([0, 0, 0, 1, 5, 20, 45, 90, 300, -30]))
        steps.append((observed(rng.randint(0, 1 << 30)), clock))
    resumed = compare(tmp_path, monkeypatch, odd_subjects, steps, rules=EXTRA, now=fixed,
                      remediations=True)
    assert any(resumed) or fixed  # with --now, each time is other inputs


TAGS = """\
rules:
  - id: many-tags
    condition: unhealthy_service
    match: "length(service.actual.tags || `[]`) > `100`"
    event: reconcile_recommended
    action: investigate
"""


@pytest.mark.parametrize(("total", "taken_up"), [(50, False), (70, True)])
def test_a_rule_that_would_spend_its_budget_over_all_subjects_fails_as_with_the_cache_off(
        total: int, taken_up: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """postgres's 30 tags, then redis's 30 too: 60 steps over all subjects, of which the run
    taking up the last evaluation evaluates only redis's 30 again."""
    monkeypatch.setenv("SUPERVISOR_MAX_RULE_STEPS_TOTAL", str(total))
    resumed = compare(tmp_path, monkeypatch,
                      lambda lab: record(lab, "nas01/postgres", tags=list(range(30))),
                      [(lambda lab: record(lab, "nas01/redis", tags=list(range(30))), T0)],
                      rules=TAGS)
    assert resumed == [taken_up]
