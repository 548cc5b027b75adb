"""`supervisor run`: transitions, the checkpoint, and safety of the state files."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, evaluate_dir, ok

from supervisor import checkpoint as checkpoint_module
from supervisor.checkpoint import Kept, load_checkpoint
from supervisor.errors import SupervisorError
from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs
from supervisor.replay import SOURCE, LogState
from supervisor.safefile import UnsafeFileError
from supervisor.transitions import Paths, default_instance, run_once

NOW = "2026-11-26T10:01:00Z"


def inputs(directory: Path, now: str = NOW) -> Inputs:
    return Inputs(inventory=directory / "hosts", world=directory / "world", now=now)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "state").mkdir()
    return Paths(events=tmp_path / "state" / "events.log",
                 checkpoint=tmp_path / "state" / "checkpoint.json")


def lines(paths: Paths) -> list[dict[str, Any]]:
    return EventLog(paths.events).read()


def replayed(paths: Paths, instance: str | None = None) -> dict[str, dict[str, Any]]:
    """The open recommendations, as a consumer replaying the log sees them (the instance of
    the log's first line of ours, unless told)."""
    events = lines(paths)
    if instance is None:
        instance = next((e["instance"] for e in events if e.get("source") == SOURCE), "")
    state = LogState(instance)
    for event in events:
        state.apply(event)
    return state.open


def quiet(message: str) -> None:
    del message


def test_first_run_opens_every_recommendation(paths: Paths) -> None:
    report = run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    events = lines(paths)
    expected = evaluate_dir(FIXTURES / "homelab", now=NOW).recommendations
    opened = [e for e in events if e["type"].startswith("reconcile_")]
    assert [e["fingerprint"] for e in opened] == [r.fingerprint for r in expected]
    assert events[-1]["type"] == "supervisor_summary" and events[-1]["summary"] == "unstable"
    assert report.open == len(expected)
    first = opened[0]
    assert list(first) == ["ts", "source", "type", "instance", "subject", "condition", "action",
                           "severity", "rule", "reason", "fingerprint", "run_id", "id",
                           "opened_at"]
    assert first["source"] == "runtime-supervisor" and first["ts"] == NOW
    assert first["opened_at"] == NOW
    assert {e["instance"] for e in events} == {default_instance(FIXTURES / "homelab" / "hosts",
                                                                paths.checkpoint)}


def test_an_unchanged_run_appends_nothing(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    size = paths.events.stat().st_size
    again = run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:01:30Z"), paths, warn=quiet)
    assert paths.events.stat().st_size == size
    assert not again.skipped  # a different now: evaluated again, with the same result


def test_byte_identical_inputs_skip_evaluation_until_time_could_matter(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet).skipped
    checkpoint = json.loads(paths.checkpoint.read_text())
    # nas01 and the others were last seen 09:59:00; the heartbeat (300 s) can flip at 10:04:00.
    assert checkpoint["valid_until"] == "2026-11-26T10:04:00Z"


def test_new_changed_and_resolved(scenario: ScenarioFactory, paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n  b: {}\n  c: {}\n"},
                    services={"n1/a": {"status": "failed"}, "n1/b": ok(), "n1/c": ok()})
    run_once(inputs(root), paths, warn=quiet)
    assert [e["type"] for e in lines(paths)] == ["reconcile_required", "supervisor_summary"]
    # a recovers, b fails, c gets three failed deployments: resolved, opened, and opened.
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    (root / "world/services/n1/b.json").write_text(json.dumps({"status": "stopped"}))
    run_once(inputs(root), paths, warn=quiet)
    second = lines(paths)[2:]
    assert [(e["type"], e["subject"]["id"]) for e in second] == [
        ("reconcile_required", "n1/b"), ("reconcile_resolved", "n1/a")]
    # c: unhealthy (redeploy, warning), then with repeated failures (diagnostics, critical).
    (root / "world/services/n1/c.json").write_text(json.dumps({"status": "failed"}))
    run_once(inputs(root), paths, warn=quiet)
    (root / "world/deployments").mkdir()
    for index in range(3):
        (root / f"world/deployments/d{index}.json").write_text(json.dumps({
            "id": f"d{index}", "service": "n1/c", "status": "failed",
            "started_at": f"2026-11-26T0{index + 5}:00:00Z"}))
    run_once(inputs(root), paths, warn=quiet)
    tail = [(e["type"], e.get("action")) for e in lines(paths)[-3:]]
    assert ("reconcile_blocked", "diagnostics") in tail
    assert ("reconcile_resolved", "redeploy") in tail
    assert replayed(paths) == {
        fp: {**entry} for fp, entry in json.loads(paths.checkpoint.read_text())["open"].items()}


def test_a_stale_world_resolves_nothing(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    before = set(replayed(paths))
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, warn=quiet)
    stale = lines(paths)[-1]
    assert stale["condition"] == "stale_world"
    assert not any(e["type"] == "reconcile_resolved" for e in lines(paths))
    assert set(replayed(paths)) == before | {stale["fingerprint"]}
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:02:00Z"), paths, warn=quiet)
    assert set(replayed(paths)) == before


STALE_UNDER_ANOTHER_NAME = """
conditions: {old_world: the observer stopped writing}
rules:
  - id: world-stale
    override: true
    subject: world
    condition: old_world
    match: "age_seconds(world.observed_at) > params.max_world_age_seconds"
    event: reconcile_blocked
    action: check_observer
    overrules: {subjects: all}
    freezes_resolution: %s
"""


@pytest.mark.parametrize("freezes", [True, False])
def test_what_freezes_resolution_is_the_rules_to_say(paths: Paths, tmp_path: Path,
                                                     freezes: bool) -> None:
    # The condition is renamed: only the rule's declaration decides whether run resolves.
    rules = tmp_path / "stale.yaml"
    rules.write_text(STALE_UNDER_ANOTHER_NAME % str(freezes).lower())
    layered = Inputs(inventory=FIXTURES / "homelab" / "hosts",
                     world=FIXTURES / "homelab" / "world", rules=(rules,), now=NOW)
    run_once(layered, paths, warn=quiet)
    before = set(replayed(paths))
    run_once(layered._replace(now="2026-11-26T11:00:00Z"), paths, warn=quiet)
    stale = next(e for e in lines(paths) if e.get("condition") == "old_world")
    resolved = {e["fingerprint"] for e in lines(paths) if e["type"] == "reconcile_resolved"}
    if freezes:
        assert resolved == set()
        assert set(replayed(paths)) == before | {stale["fingerprint"]}
    else:
        assert resolved == before
        assert set(replayed(paths)) == {stale["fingerprint"]}


def test_event_ids_are_the_same_for_the_same_transition(tmp_path: Path) -> None:
    """Written again after a crash (here: a second state directory, the same instance), the
    same transitions carry the same ids."""
    runs = []
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        paths = Paths(tmp_path / name / "events.log", tmp_path / name / "checkpoint.json")
        run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=quiet)
        runs.append([e["id"] for e in lines(paths)])
    assert runs[0] == runs[1]
    assert len(set(runs[0])) == len(runs[0])


def test_a_lost_append_is_written_again_with_the_same_ids(scenario: ScenarioFactory,
                                                          paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    run_once(inputs(root), paths, warn=quiet)
    log, checkpoint = paths.events.read_bytes(), paths.checkpoint.read_bytes()
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    run_once(inputs(root, "2026-11-26T10:02:00Z"), paths, warn=quiet)
    written = lines(paths)[len(log.splitlines()):]
    # The machine crashed: neither that append nor the checkpoint reached the disk.
    paths.events.write_bytes(log)
    paths.checkpoint.write_bytes(checkpoint)
    run_once(inputs(root, "2026-11-26T10:02:00Z"), paths, warn=quiet)
    again = lines(paths)[len(log.splitlines()):]
    assert [e["id"] for e in again] == [e["id"] for e in written]
    assert [e["type"] for e in again] == ["reconcile_resolved", "supervisor_summary"]


def test_an_episode_after_a_wipe_gets_a_new_id(scenario: ScenarioFactory, paths: Paths) -> None:
    """Open, resolve, lose the log and the checkpoint (a reboot clears /tmp), open again: the
    second episode's opening is a new id, so a consumer that drops ids it has seen keeps it."""
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    run_once(inputs(root), paths, warn=quiet)
    first = lines(paths)[0]
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    run_once(inputs(root, "2026-11-26T10:02:00Z"), paths, warn=quiet)
    resolved = lines(paths)[-2]
    assert resolved["type"] == "reconcile_resolved"
    assert resolved["opened_at"] == first["opened_at"] == NOW
    paths.events.unlink()
    paths.checkpoint.unlink()
    (root / "world/services/n1/a.json").write_text(json.dumps({"status": "failed"}))
    run_once(inputs(root, "2026-11-26T10:03:00Z"), paths, warn=quiet)
    second = lines(paths)[0]
    assert second["fingerprint"] == first["fingerprint"]
    assert second["opened_at"] == "2026-11-26T10:03:00Z"
    assert second["id"] not in {first["id"], resolved["id"]}


def test_a_change_keeps_the_episode_and_gets_its_own_id(scenario: ScenarioFactory,
                                                        paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    run_once(inputs(root), paths, warn=quiet)
    (root / "world/deployments").mkdir()
    for index in range(3):
        (root / f"world/deployments/d{index}.json").write_text(json.dumps({
            "id": f"d{index}", "service": "n1/a", "status": "failed",
            "started_at": f"2026-11-26T0{index + 5}:00:00Z"}))
    run_once(inputs(root, "2026-11-26T10:05:00Z"), paths, warn=quiet)
    ours = [e for e in lines(paths) if e["type"].startswith("reconcile_")]
    by_rule = {}
    for event in ours:
        by_rule.setdefault(event["fingerprint"], []).append(event)
    assert len({e["id"] for e in ours}) == len(ours)
    for episode in by_rule.values():
        assert len({e["opened_at"] for e in episode}) == 1


def test_checkpoint_lagging_the_log_is_caught_up(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    saved = paths.checkpoint.read_bytes()
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, warn=quiet)
    # As if killed after appending the stale_world line but before checkpointing it:
    paths.checkpoint.write_bytes(saved)
    count = len(lines(paths))
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, warn=quiet)
    assert len(lines(paths)) == count  # nothing emitted twice


def test_missing_checkpoint_is_rebuilt_from_the_log(paths: Paths) -> None:
    messages: list[str] = []
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    paths.checkpoint.unlink()
    count = len(lines(paths))
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:01:10Z"), paths, warn=messages.append)
    assert len(lines(paths)) == count
    assert "rebuilt the open recommendations" in messages[0]


def test_corrupt_checkpoint_is_moved_aside_loudly(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    paths.checkpoint.write_text('{"version": 99}')
    count = len(lines(paths))
    messages: list[str] = []
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:01:10Z"), paths, warn=messages.append)
    assert len(lines(paths)) == count
    assert any("WARNING" in m and "moved it to" in m for m in messages)
    assert len(list(paths.checkpoint.parent.glob("checkpoint.json.corrupt-*"))) == 1
    assert json.loads(paths.checkpoint.read_text())["version"] == 2


def test_a_partial_last_line_is_ended_never_cut(paths: Paths) -> None:
    """Issue 11 item 4: a last line without its newline may be another writer's; it is kept,
    ended with a newline, and skipped by readers since it does not parse."""
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    whole = paths.events.read_bytes()
    partial = b'{"ts": "2026-11-26T10:01:00Z", "source": "backup-agent", "msg": "half a reco'
    with paths.events.open("ab") as handle:
        handle.write(partial)
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, warn=quiet)
    data = paths.events.read_bytes()
    assert data.startswith(whole + partial + b"\n")
    stale = json.loads(data[len(whole + partial + b"\n"):].splitlines()[0])
    assert stale["condition"] == "stale_world"
    assert set(replayed(paths)) == set(json.loads(paths.checkpoint.read_text())["open"])


def test_a_large_foreign_record_without_newline_is_kept(paths: Paths) -> None:
    """A 300 KB record another program left unterminated used to cost the whole file."""
    foreign = b'{"source": "backup-agent", "blob": "' + b"x" * 300_000 + b'"}'
    paths.events.write_bytes(b'{"source": "backup-agent", "n": 1}\n' + foreign)
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    data = paths.events.read_bytes()
    assert data.startswith(b'{"source": "backup-agent", "n": 1}\n' + foreign + b"\n")
    assert json.loads(data.splitlines()[1]) == json.loads(foreign)  # whole, and now a line
    assert len(replayed(paths)) == 7


def test_other_writers_lines_are_kept_and_ignored(paths: Paths) -> None:
    paths.events.write_text('{"source": "backup-agent", "type": "reconcile_required", '
                            '"fingerprint": "x"}\nnot json\n')
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert "x" not in replayed(paths)
    assert paths.events.read_text().startswith('{"source": "backup-agent"')


def test_symlinks_are_refused(paths: Paths, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    os.symlink(target, paths.events)
    with pytest.raises(UnsafeFileError, match="is a symlink; refusing to follow it"):
        run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert target.read_text() == "precious\n"
    paths.events.unlink()
    os.symlink(target, paths.checkpoint)
    with pytest.raises(UnsafeFileError, match="is a symlink"):
        run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert target.read_text() == "precious\n"


def test_checkpoint_owned_by_another_user_is_refused(paths: Paths) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    paths.checkpoint.write_text("{}")
    os.chown(paths.checkpoint, 65534, 65534)
    with pytest.raises(UnsafeFileError, match="is owned by uid 65534"):
        run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)


def test_files_are_created_owner_only(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert paths.events.stat().st_mode & 0o777 == 0o600
    assert paths.checkpoint.stat().st_mode & 0o777 == 0o600


def test_bad_world_once_leaves_everything_untouched(scenario: ScenarioFactory,
                                                    paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    run_once(inputs(root), paths, warn=quiet)
    log, checkpoint = paths.events.read_bytes(), paths.checkpoint.read_bytes()
    (root / "world/services/n1/a.json").write_text('{"status": ')
    with pytest.raises(SupervisorError):
        run_once(inputs(root, "2026-11-26T10:02:00Z"), paths, warn=quiet)
    assert paths.events.read_bytes() == log and paths.checkpoint.read_bytes() == checkpoint


def test_bad_world_in_the_loop_reports_once_and_keeps_state(scenario: ScenarioFactory,
                                                            paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    run_once(inputs(root), paths, warn=quiet)
    before = replayed(paths)
    (root / "world/services/n1/a.json").write_text('{"status": ')
    for second in range(3):
        report = run_once(inputs(root, f"2026-11-26T10:02:0{second}Z"), paths, warn=quiet,
                          keep_going=True)
        assert report.problems
    errors = [e for e in lines(paths) if e["type"] == "supervisor_error"]
    assert len(errors) == 1
    assert "a.json:1:12: invalid JSON" in errors[0]["problems"][0]
    assert replayed(paths) == before
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    run_once(inputs(root, "2026-11-26T10:03:00Z"), paths, warn=quiet, keep_going=True)
    assert replayed(paths) == {}


def test_load_checkpoint_of_a_rotated_log(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    open_before = set(replayed(paths))
    paths.events.write_text("")
    messages: list[str] = []
    checkpoint = load_checkpoint(paths.checkpoint, EventLog(paths.events),
                                 default_instance(FIXTURES / "homelab" / "hosts", paths.checkpoint),
                                 os.path.abspath(FIXTURES / "homelab" / "hosts"), messages.append)
    assert set(checkpoint.state.open) == open_before
    assert "rotated" in messages[0]


def test_an_unchanged_run_leaves_the_checkpoint_alone(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    before = paths.checkpoint.stat()
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet).skipped
    after = paths.checkpoint.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_kept_checkpoint_is_used_while_the_files_are_as_it_left_them(
        scenario: ScenarioFactory, paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    root = scenario({"n1": "services:\n  a: {}\n  b: {}\n"},
                    services={"n1/a": {"status": "failed"}, "n1/b": ok()})
    kept = Kept()
    run_once(inputs(root), paths, warn=quiet, kept=kept)
    reads: list[Path] = []
    read = checkpoint_module._read
    monkeypatch.setattr(checkpoint_module, "_read",
                        lambda path, warn: reads.append(path) or read(path, warn))
    assert run_once(inputs(root), paths, warn=quiet, kept=kept).skipped
    assert reads == []  # a heartbeat with nothing new reads nothing
    # Another run (another process) resolves a: the kept state is out of date, so it is read
    # again, and the resolution is not written twice.
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    run_once(inputs(root), paths, warn=quiet)
    assert run_once(inputs(root), paths, warn=quiet, kept=kept).skipped
    assert reads == [paths.checkpoint, paths.checkpoint]
    assert [e["type"] for e in lines(paths)] == [
        "reconcile_required", "supervisor_summary", "reconcile_resolved", "supervisor_summary"]


def test_a_kept_checkpoint_notices_a_rotated_log(paths: Paths) -> None:
    kept = Kept()
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, kept=kept)
    open_before = set(replayed(paths))
    paths.events.write_text("")  # copytruncate
    messages: list[str] = []
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=messages.append, kept=kept).skipped
    assert "rotated" in messages[0]
    assert set(replayed(paths)) == open_before  # written again, from the checkpoint


def test_an_evaluation_is_left_out_of_the_collectors_walks(paths: Paths) -> None:
    """Loaded with the collector paused, its first pass would walk everything (manifest.py)."""
    gc.unfreeze()
    try:
        assert not run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet).skipped
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
