"""Incremental evaluation (run --watch, and run --once taking up the last run's) equals a full
evaluation, byte for byte, after every change of random sequences: status flips, nodes going
offline, records added and removed, inventory and rule edits, the world going stale, the clock
moving on, or set back."""

from __future__ import annotations

import gc
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support.scenarios import ROOT

from supervisor import cache, memo
from supervisor.errors import RuleError
from supervisor.incremental import Incremental
from supervisor.inputs import Inputs, evaluate_inputs
from supervisor.manifest import Check, Fresh
from supervisor.timestamps import format_time, parse_time
from supervisor.transitions import Paths, run_once

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


def changing_copy(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                  ) -> tuple[Path, Inputs, datetime]:
    """A copy of the generated lab to change at random, its files counted as settled, its
    inputs (with the extra rules) and the time its world was observed."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab = tmp_path / "lab"
    shutil.copytree(generated, lab)
    inputs = Inputs(inventory=lab / "hosts", world=lab / "world", rules=(lab / "rules",))
    return lab, inputs, parse_time(
        json.loads((lab / "world" / "world.json").read_text())["observed_at"])


@pytest.mark.parametrize("seed", range(6))
def test_incremental_evaluation_equals_full_evaluation(
        seed: int, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, inputs, now = changing_copy(generated, tmp_path, monkeypatch)
    rng = random.Random(seed)
    kept = Incremental()
    kept.notice(None)
    digest = kept.fingerprint(inputs)
    _, evaluation = kept.evaluate(inputs, now)
    assert json.dumps(evaluation.to_json(), indent=2) + digest == full(inputs, now, monkeypatch)
    for _ in range(STEPS):
        touched = change(rng, lab)
        now += timedelta(seconds=rng.choice([0, 0, 5, 90, 900, -60, -86400]))
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


# A run in a process of its own takes up the evaluation the last run left in the cache (memo.py).


def run_alone(inputs: Inputs, now: datetime) -> tuple[str, bool]:
    """One `run --once`'s evaluation, as a process of its own makes it: a new source, with only
    the cache carried over; its JSON and digest, and whether it took up the last one."""
    found, resumed, _ = run_alone_loading(inputs, now)
    return found, resumed


def run_alone_loading(inputs: Inputs, now: datetime) -> tuple[str, bool, frozenset[str] | None]:
    """`run_alone`, and the nodes it loaded, if only some."""
    source = Fresh()
    digest = source.fingerprint(inputs)
    loaded, evaluation = source.evaluate(inputs, now)
    return (json.dumps(evaluation.to_json(), indent=2) + digest, source.resumed,
            loaded.state.part)


@pytest.mark.parametrize("seed", range(6))
def test_an_evaluation_taken_up_by_the_next_run_equals_a_full_evaluation(
        seed: int, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, inputs, now = changing_copy(generated, tmp_path, monkeypatch)
    rng = random.Random(seed)
    taken_up, parts = [], []
    for step in range(STEPS + 1):
        touched = change(rng, lab) if step else set()
        now += timedelta(seconds=rng.choice([0, 0, 5, 90, 900, -60, -86400]))
        found, resumed, part = run_alone_loading(inputs, now)
        assert found == full(inputs, now, monkeypatch), touched
        taken_up.append(resumed)
        if part is not None:
            parts.append(len(part))
    assert any(taken_up) and not all(taken_up)  # both ways were taken
    assert parts  # and some with only part of the inputs loaded


def test_only_the_evaluation_of_the_inputs_as_they_were_is_taken_up(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    world = inputs.world
    record = min((world / "services").glob("*/*.json"))
    flipped = record.read_text().replace('"status": "ok"', '"status": "failed"')
    assert flipped != record.read_text()
    assert run_alone(inputs, now)[1] is False  # nothing remembered yet
    rewrite(record, flipped)
    assert run_alone(inputs, now)[1] is True
    # Recorded hashes rewritten by a run elsewhere whose evaluation this cache does not hold:
    # the remembered evaluation is of other inputs.
    rewrite(record, record.read_text() + " ")
    Check(inputs).save()
    rewrite(record, flipped)
    found, resumed = run_alone(inputs, now)
    assert not resumed and found == full(inputs, now, monkeypatch)
    # Files added or removed since: not a change the incremental evaluation takes in.
    extra = record.with_name("extra.json")
    rewrite(extra, record.read_text())
    assert run_alone(inputs, now)[1] is False
    rewrite(record, record.read_text().replace('"failed"', '"ok"'))
    extra.unlink()
    assert run_alone(inputs, now)[1] is False
    # Other options (`--now`): other inputs.
    later = inputs._replace(now="2026-11-26T10:06:00Z")
    assert run_alone(later, now)[1] is False


@pytest.mark.parametrize("garbage", [
    {"digest": None}, {"now": "yesterday"}, {"now": "2026-11-26T10:05:00"}, {"now": None},
    {"valid_until": 12}, {"valid_until": "soon"}, {"fired": {}}, {"fired": [["service"]]},
    {"depends_on": None}, {"depends_on": []}, {"depends_on": {"a/b": "a/c"}},
    {"depends_on": {"a/b": [1]}}, {"timed": None}, {"timed": "age"}, {"timed": [1]},
    {"pinned": None}, {"pinned": [["service"]]}, {"pinned": [[1, 2]]}, {"spent": None},
    {"spent": {"service-missing": "1"}},
    *({"column": column} for column in range(memo.FIELDS)),
])
def test_a_remembered_evaluation_not_in_the_shape_written_is_ignored(
        garbage: dict[str, object], generated: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    record = min((inputs.world / "services").glob("*/*.json"))
    run_alone(inputs, now)
    (path,) = Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("evaluation-*.json")
    identity = json.loads(path.read_bytes().partition(b"\n")[0])["identity"]
    remembered = cache.read(path, identity)
    assert remembered is not None and memo.recall(remembered, remembered["digest"]) is not None
    if "column" in garbage:  # one column of the first row of another type
        row = remembered["fired"][0]
        row[garbage.pop("column")] = [1.5]
        assert memo.recall(remembered, remembered["digest"]) is None
    cache.write(path, identity, {**remembered, **garbage})
    rewrite(record, record.read_text().replace('"status": "ok"', '"status": "failed"'))
    found, resumed = run_alone(inputs, now)
    assert not resumed and found == full(inputs, now, monkeypatch)


def test_run_once_takes_up_the_last_runs_evaluation_and_writes_what_a_full_one_would(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab, state = tmp_path / "lab", tmp_path / "state"
    written, resumed = {}, {}
    for caching in ("on", "off"):
        monkeypatch.setenv("SUPERVISOR_CACHE", caching)
        shutil.copytree(generated, lab)
        state.mkdir()
        inputs = Inputs(inventory=lab / "hosts", world=lab / "world", now="2026-11-26T10:00:30Z")
        paths = Paths(events=state / "events.log", checkpoint=state / "checkpoint.json")
        run_once(inputs, paths)
        first = paths.events.read_text()
        services = sorted((lab / "world" / "services").glob("*/*.json"))
        for record in services[::7]:
            rewrite(record, record.read_text().replace('"status": "ok"', '"status": "failed"')
                    .replace('"status": "starting"', '"status": "ok"'))
        source = Fresh()
        run_once(inputs, paths, source=source)
        resumed[caching] = source.resumed
        assert paths.events.read_text().count("\n") > first.count("\n") + 2  # changes written
        checkpoint = json.loads(paths.checkpoint.read_text())
        del checkpoint["log_tail"]  # a hash of the last line, which holds the run's id
        written[caching] = (re.sub(r'"run_id":"\w+"', "", paths.events.read_text())
                            + json.dumps(checkpoint))
        shutil.rmtree(lab)
        shutil.rmtree(state)
    assert resumed == {"on": True, "off": False}
    assert written["on"] == written["off"]


def test_a_partial_evaluation_keeps_the_limits_in_force(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    kept = Incremental()
    kept.notice(None)
    kept.fingerprint(inputs)
    kept.evaluate(inputs, now)
    monkeypatch.setenv("SUPERVISOR_MAX_RULE_STEPS", "1")  # as a full evaluation now has it
    with pytest.raises(RuleError) as failed:
        evaluate_inputs(inputs, clock=now)
    found = re.search(r"on service (\S+):", failed.value.problems[0].message)
    assert found is not None
    record = inputs.world / "services" / f"{found[1]}.json"  # one that spends more than that
    rewrite(record, record.read_text() + " ")
    kept.notice({os.path.realpath(record)})
    kept.fingerprint(inputs)
    with pytest.raises(RuleError):
        kept.evaluate(inputs, now)


def test_a_run_alone_freezes_its_evaluation_before_the_collector_resumes(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs, now = settled_copy(generated, tmp_path, monkeypatch)
    gc.unfreeze()
    source = Fresh()
    source.fingerprint(inputs)
    passes: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    gc.callbacks.append(counted)
    try:
        loaded, _ = source.evaluate(inputs, now)
    finally:
        gc.callbacks.remove(counted)
    assert passes == []  # the collector walked none of it
    subjects = loaded.state.subjects
    assert gc.is_tracked(subjects)
    assert not any(tracked is subjects for tracked in gc.get_objects())  # frozen
