"""Incremental evaluation (run --watch) equals a full evaluation, byte for byte, after every
change of random sequences: status flips, nodes going offline, records added and removed,
inventory and rule edits, the world going stale, the clock moving on."""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.scenarios import ROOT

from supervisor import cache
from supervisor.incremental import Incremental
from supervisor.inputs import Inputs, evaluate_inputs
from supervisor.manifest import Check
from supervisor.timestamps import format_time, parse_time

STEPS = 14
RULES = """\
params:
  restart_threshold: 3
rules:
  - id: flapping
    condition: unhealthy_service
    match: "service.actual.restarts > params.restart_threshold"
    event: reconcile_recommended
    action: investigate
    reason: "{{ subject.id }} restarted {{ service.actual.restarts }} times"
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = tmp_path_factory.mktemp("generated") / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes", "6",
                    "--services", "9"], check=True, stdout=subprocess.DEVNULL)
    (lab / "rules").mkdir()
    (lab / "rules" / "extra.yaml").write_text(RULES)
    return lab


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """A full evaluation freezes what it keeps (see incremental.py): not past each test."""
    yield
    gc.unfreeze()


def settled_copy(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                 ) -> tuple[Inputs, datetime]:
    """A copy of the generated lab, its files counted as settled, and its inputs at 10:05."""
    monkeypatch.setattr(cache, "RACY_NS", -1)  # files written a moment ago count as settled
    lab = tmp_path / "lab"
    shutil.copytree(generated, lab)
    return (Inputs(inventory=lab / "hosts", world=lab / "world", now="2026-11-26T10:05:00Z"),
            parse_time("2026-11-26T10:05:00Z"))


def rewrite(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def change(rng: random.Random, lab: Path) -> set[Path]:
    """One random change, as an observer or an operator makes it; the paths it touched."""
    world = lab / "world"
    services = sorted((world / "services").glob("*/*.json"))
    nodes = sorted((world / "nodes").glob("*.json"))
    kind = rng.choice(["status"] * 6 + ["restarts", "node"] * 2 + ["several", "add", "remove",
                       "inventory", "rules", "stale"])
    if kind in ("status", "restarts", "several"):
        touched = set(rng.sample(services, 3 if kind == "several" else 1))
        for path in touched:
            record = json.loads(path.read_text())
            if kind == "restarts":
                record["restarts"] = rng.randint(0, 6)
            else:
                record["status"] = rng.choice(["ok", "failed", "degraded", "stopped", "starting"])
            rewrite(path, json.dumps(record))
        return touched
    if kind == "node":
        path = rng.choice(nodes)
        record = json.loads(path.read_text())
        record["status"] = rng.choice(["online", "offline"])
        rewrite(path, json.dumps(record))
        return {path}
    if kind == "add":
        path = world / "services" / nodes[0].stem / f"extra{rng.randint(0, 999)}.json"
        path.parent.mkdir(exist_ok=True)
        rewrite(path, json.dumps({"status": "ok", "since": "2026-11-26T09:00:00Z"}))
        return {path}
    if kind == "remove":
        path = rng.choice(services)
        path.unlink()
        return {path}
    if kind == "inventory":
        path = rng.choice(sorted((lab / "hosts").glob("*/services.yaml")))
        rewrite(path, path.read_text().replace("critical: false", "critical: true", 1)
                + f"\n# edited {rng.random()}\n")
        return {path}
    if kind == "rules":
        path = lab / "rules" / "extra.yaml"
        rewrite(path, RULES.replace("restart_threshold: 3",
                                    f"restart_threshold: {rng.randint(1, 5)}"))
        return {path}
    path = world / "world.json"  # stale, or fresh again
    meta = json.loads(path.read_text())
    observed = parse_time(meta["observed_at"]) + timedelta(minutes=rng.choice([-30, 30]))
    meta["observed_at"] = format_time(observed)
    rewrite(path, json.dumps(meta))
    return {path}


def full(inputs: Inputs, now: object, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        _, evaluation = evaluate_inputs(inputs, clock=now)  # type: ignore[arg-type]
        digest = Check(inputs).digest
    return json.dumps(evaluation.to_json(), indent=2) + digest


@pytest.mark.parametrize("seed", range(6))
def test_incremental_evaluation_equals_full_evaluation(
        seed: int, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -1)  # files written a moment ago count as settled
    rng = random.Random(seed)
    lab = tmp_path / "lab"
    shutil.copytree(generated, lab)
    inputs = Inputs(inventory=lab / "hosts", world=lab / "world", rules=(lab / "rules",))
    now = parse_time(json.loads((lab / "world" / "world.json").read_text())["observed_at"])
    kept = Incremental()
    kept.notice(None)
    digest = kept.fingerprint(inputs)
    _, evaluation = kept.evaluate(inputs, now)
    assert json.dumps(evaluation.to_json(), indent=2) + digest == full(inputs, now, monkeypatch)
    for _ in range(STEPS):
        touched = change(rng, lab)
        now += timedelta(seconds=rng.choice([0, 0, 5, 90, 900]))
        kept.notice({os.path.realpath(path) for path in touched})
        digest = kept.fingerprint(inputs)
        _, evaluation = kept.evaluate(inputs, now)
        assert json.dumps(evaluation.to_json(), indent=2) + digest == \
            full(inputs, now, monkeypatch), touched
    assert kept.incremental_runs > 0 and kept.full_runs > 1  # both ways were taken


def test_a_change_the_watcher_cannot_name_is_evaluated_in_full(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    lab = inputs.inventory.parent
    kept = Incremental()
    kept.notice(None)
    kept.fingerprint(inputs)
    kept.evaluate(inputs, now)
    record = min((lab / "world" / "services").glob("*/*.json"))
    rewrite(record, record.read_text().replace('"status"', '"status" '))
    kept.notice(None)  # an overflowing queue, say
    kept.fingerprint(inputs)
    kept.evaluate(inputs, now)
    assert (kept.full_runs, kept.incremental_runs) == (2, 0)
    rewrite(record, record.read_text().replace('"status" ', '"status"'))
    kept.notice({os.path.realpath(record)})
    kept.fingerprint(inputs)
    kept.evaluate(inputs, now)
    assert (kept.full_runs, kept.incremental_runs) == (2, 1)


def test_a_walk_that_finds_nothing_changed_keeps_the_evaluation(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    kept = Incremental()
    kept.notice(None)
    first = kept.fingerprint(inputs)
    kept.evaluate(inputs, now)
    kept.notice(None)  # a periodic walk, or an input replaced by an identical one
    assert kept.fingerprint(inputs) == first
    kept.evaluate(inputs, now)
    kept.notice(set())  # a heartbeat
    assert kept.fingerprint(inputs) == first
    kept.evaluate(inputs, now)
    assert (kept.full_runs, kept.incremental_runs) == (1, 2)


def test_what_a_full_evaluation_keeps_is_left_out_of_the_collectors_walks(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    gc.unfreeze()
    kept = Incremental()
    kept.notice(None)
    kept.fingerprint(inputs)
    loaded, _ = kept.evaluate(inputs, now)
    subjects = loaded.state.subjects
    assert gc.is_tracked(subjects) and gc.get_freeze_count() > 0
    assert not any(tracked is subjects for tracked in gc.get_objects())  # frozen: in no generation
