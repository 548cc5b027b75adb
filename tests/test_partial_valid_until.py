"""A run --once that takes up the last evaluation writes what it writes with the cache off,
its checkpoint's `valid_until` included, as failures start and end and the clock moves on."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.scenarios import ROOT

from supervisor import cache
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
            run_once(inputs, paths, source=source, clock=lambda clock=clock: clock,
                     warn=lambda line: None)
            outputs[caching].append(written(paths))
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
