"""The event log under real operations (issue 11 items 1-5): rotation, instances, other
writers, broken lines. Real files, in-process runs; tests/test_logrotate.py runs logrotate."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, evaluate_dir, ok

from supervisor.errors import SupervisorError
from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs
from supervisor.replay import SOURCE, LogState
from supervisor.transitions import Paths, default_instance, run_once

NOW = "2026-11-26T10:01:00Z"
LATER = "2026-11-26T10:01:30Z"


def inputs(directory: Path, now: str = NOW) -> Inputs:
    return Inputs(inventory=directory / "hosts", world=directory / "world", now=now)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "state").mkdir()
    return Paths(events=tmp_path / "state" / "events.log",
                 checkpoint=tmp_path / "state" / "checkpoint.json")


def replay_file(path: Path, instance: str) -> dict[str, dict[str, Any]]:
    """What a consumer replaying only the current file gets."""
    state = LogState(instance)
    EventLog(path).replay(state)
    return state.open


def expected(directory: Path, now: str = NOW) -> dict[str, tuple[str, str, str]]:
    return {r.fingerprint: (r.event, r.action, r.severity)
            for r in evaluate_dir(directory, now=now).recommendations}


def shape(open_set: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    return {fp: (e["event"], e["action"], e["severity"]) for fp, e in open_set.items()}


class Messages(list[str]):
    def __call__(self, message: str) -> None:
        self.append(message)


# -- 1. rotation: the current file alone replays to the open set -------------------------------

def rotate(kind: str, log: Path) -> None:
    """What logrotate does to the log, by hand (tests/test_logrotate.py runs the real one)."""
    if kind == "copytruncate":
        shutil.copyfile(log, log.with_suffix(".log.1"))
        with log.open("r+b") as handle:
            handle.truncate(0)
    elif kind == "create":
        log.rename(log.with_suffix(".log.1"))
        log.touch(mode=0o600)
    elif kind == "rename":
        log.rename(log.with_suffix(".log.1"))
    elif kind == "delete":
        log.unlink()
    elif kind == "replace":  # another file, even a longer one, renamed over the log
        other = log.with_suffix(".new")
        other.write_bytes(b'{"source": "backup-agent"}\n' * 2000)
        other.rename(log)


@pytest.mark.parametrize("kind", ["copytruncate", "create", "rename", "delete", "replace"])
def test_after_rotation_the_current_log_replays_to_the_open_set(kind: str, paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    rotate(kind, paths.events)
    messages = Messages()
    report = run_once(inputs(FIXTURES / "homelab", LATER), paths, instance="lab", warn=messages)
    assert shape(replay_file(paths.events, "lab")) == expected(FIXTURES / "homelab") != {}
    assert [m for m in messages if "rotated" in m] == [
        (f"{paths.events}: rotated, truncated, replaced or deleted since the last run; writing "
        "the 7 open recommendation(s) to it again (a resync)")]
    assert report.counts == {"resync": 8}  # 7 recommendations and the summary
    # Warned once: the next run finds the log as it left it.
    messages.clear()
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:01:40Z"), paths, instance="lab",
             warn=messages)
    assert messages == []


def test_a_resync_line_repeats_the_id_of_the_line_it_stands_for(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    before = {e["id"]: e for e in EventLog(paths.events).read()}
    rotate("copytruncate", paths.events)
    run_once(inputs(FIXTURES / "homelab", LATER), paths, instance="lab", warn=Messages())
    after = EventLog(paths.events).read()
    assert all(e["resync"] is True for e in after)
    for line in after:
        original = before[line["id"]]
        assert line["type"] == original["type"]
        assert {k: v for k, v in line.items() if k not in ("ts", "run_id", "resync")} == \
            {k: v for k, v in original.items() if k not in ("ts", "run_id", "previous")}


def test_rotation_with_unchanged_inputs_still_resyncs(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    rotate("delete", paths.events)
    report = run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    assert report.skipped and report.counts == {"resync": 8}
    assert "inputs unchanged; 8 lines written again (resync)" in report.line()
    assert len(replay_file(paths.events, "lab")) == 7


def test_a_foreign_append_after_a_copytruncate_is_still_a_rotation(paths: Paths) -> None:
    """A truncated log that another writer filled past our old size is not the old file."""
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    size = paths.events.stat().st_size
    rotate("copytruncate", paths.events)
    paths.events.write_bytes(b'{"source": "backup-agent", "pad": "' + b"y" * size + b'"}\n')
    run_once(inputs(FIXTURES / "homelab", LATER), paths, instance="lab", warn=Messages())
    assert len(replay_file(paths.events, "lab")) == 7


def test_a_run_killed_after_its_resync_is_caught_up(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    saved = paths.checkpoint.read_bytes()
    rotate("copytruncate", paths.events)
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, instance="lab",
             warn=Messages())  # resync, then stale_world opens
    paths.checkpoint.write_bytes(saved)  # killed before its checkpoint
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T11:00:00Z"), paths, instance="lab",
             warn=Messages())
    opened = [e for e in EventLog(paths.events).read() if e.get("condition") == "stale_world"]
    assert len({e["id"] for e in opened}) == 1  # the stale_world opening was not made twice
    assert len(replay_file(paths.events, "lab")) == 8


# -- 3. instances -----------------------------------------------------------------------------

def test_two_supervisors_share_a_log_without_touching_each_other(
        scenario: ScenarioFactory, tmp_path: Path) -> None:
    site_a = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    site_b = tmp_path / "site-b"
    shutil.copytree(FIXTURES / "homelab", site_b)
    log = tmp_path / "shared.log"
    a = Paths(log, tmp_path / "a.json")
    b = Paths(log, tmp_path / "b.json")
    for now in (NOW, LATER, "2026-11-26T10:02:00Z"):
        run_once(inputs(site_a, now), a, warn=Messages())
        run_once(inputs(site_b, now), b, warn=Messages())
    events = EventLog(log).read()
    assert not [e for e in events if e["type"] == "reconcile_resolved"]
    instance_a = default_instance(site_a / "hosts", a.checkpoint)
    instance_b = default_instance(site_b / "hosts", b.checkpoint)
    assert instance_a != instance_b
    assert {e["instance"] for e in events} == {instance_a, instance_b}
    assert shape(replay_file(log, instance_a)) == expected(site_a)
    assert shape(replay_file(log, instance_b)) == expected(site_b)


def test_the_default_instance_is_derived_from_both_paths(tmp_path: Path) -> None:
    one = default_instance(Path("/srv/lab/hosts"), Path("/tmp/supervisor-checkpoint.json"))
    assert one == default_instance(Path("/srv/lab/hosts"), Path("/tmp/supervisor-checkpoint.json"))
    assert one.startswith("lab-")
    assert one != default_instance(Path("/srv/lab2/hosts"), Path("/tmp/supervisor-checkpoint.json"))
    assert one != default_instance(Path("/srv/lab/hosts"), Path("/tmp/other.json"))


def test_a_checkpoint_of_another_inventory_is_refused(scenario: ScenarioFactory, tmp_path: Path,
                                                      paths: Paths) -> None:
    other = tmp_path / "other"
    shutil.copytree(FIXTURES / "homelab", other)
    run_once(inputs(FIXTURES / "homelab"), paths, warn=Messages())
    log, checkpoint = paths.events.read_bytes(), paths.checkpoint.read_bytes()
    with pytest.raises(SupervisorError) as caught:
        run_once(inputs(other), paths, warn=Messages())
    assert str(caught.value) == (
        f"{paths.checkpoint}: was written for the inventory {FIXTURES / 'homelab' / 'hosts'} "
        f"(instance {default_instance(FIXTURES / 'homelab' / 'hosts', paths.checkpoint)!r}), "
        f"not for {other / 'hosts'} (instance {default_instance(other / 'hosts', paths.checkpoint)!r}); "
        "give each inventory its own --checkpoint (and --instance), or remove this one to start "
        "over from the event log")
    assert paths.events.read_bytes() == log and paths.checkpoint.read_bytes() == checkpoint
    with pytest.raises(SupervisorError, match="instance 'renamed'"):
        run_once(inputs(FIXTURES / "homelab"), paths, instance="renamed", warn=Messages())


# -- 4 and 5. other writers' bytes, broken lines of ours --------------------------------------

def test_broken_lines_of_ours_are_skipped_counted_and_warned_once(paths: Paths) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=Messages())
    forged = [
        {"ts": NOW, "source": SOURCE, "type": "reconcile_required", "instance": "lab",
         "fingerprint": "f0rged"},  # no subject, action, id, ...
        {"ts": NOW, "source": SOURCE, "type": "reconcile_resolved", "instance": "lab"},
        {"ts": NOW, "source": SOURCE, "type": "supervisor_summary", "instance": "lab",
         "summary": "splendid", "id": "x"},
        {"ts": NOW, "source": SOURCE, "type": "reconcile_required", "instance": "other",
         "fingerprint": "theirs"},  # another instance's: not ours to judge
    ]
    with paths.events.open("a") as handle:
        handle.write("".join(json.dumps(line) + "\n" for line in forged))
    paths.checkpoint.unlink()  # rebuild from the whole log, through the forged lines
    messages = Messages()
    run_once(inputs(FIXTURES / "homelab", LATER), paths, instance="lab", warn=messages)
    broken = [m for m in messages if "skipped" in m]
    assert broken == [(f"{paths.events}: skipped 3 broken line(s) of instance 'lab' (the first: "
                      "a reconcile_required line without 'subject')")]
    checkpoint = json.loads(paths.checkpoint.read_text())
    assert "f0rged" not in checkpoint["open"] and len(checkpoint["open"]) == 7
    messages.clear()
    run_once(inputs(FIXTURES / "homelab", "2026-11-26T10:01:40Z"), paths, instance="lab",
             warn=messages)
    assert messages == []  # counted once, when read; the checkpoint stayed valid


def test_checkpoints_moved_aside_in_the_same_second_keep_distinct_names(paths: Paths) -> None:
    for _ in range(3):
        paths.checkpoint.write_text('{"version": 99}')
        run_once(inputs(FIXTURES / "homelab"), paths, warn=Messages())
    aside = list(paths.checkpoint.parent.glob("checkpoint.json.corrupt-*"))
    assert len(aside) == 3
    assert all(path.read_text() == '{"version": 99}' for path in aside)


def test_an_unterminated_line_is_not_read_until_it_ends(tmp_path: Path) -> None:
    log = tmp_path / "events.log"
    line = {"ts": NOW, "source": SOURCE, "type": "supervisor_summary", "instance": "lab",
            "summary": "degraded", "id": "s1"}
    log.write_bytes(json.dumps(line).encode())
    state = LogState("lab")
    mark = EventLog(log).replay(state)
    assert (state.summary, mark.size) == (None, 0)
    with log.open("ab") as handle:
        handle.write(b"\n")
    mark = EventLog(log).replay(state)
    assert (state.summary, mark.size) == ("degraded", log.stat().st_size)


def test_foreign_and_unparsable_lines_are_skipped_silently(paths: Paths) -> None:
    paths.events.write_bytes(b'\xff\xfe garbage\n[1, 2]\n{"source": "backup-agent"}\n'
                             b'{"deep": ' + b"[" * 100_000 + b"\n")
    messages = Messages()
    run_once(inputs(FIXTURES / "homelab"), paths, instance="lab", warn=messages)
    assert not [m for m in messages if "skipped" in m]
    assert len(replay_file(paths.events, "lab")) == 7


def test_the_resync_and_a_change_in_one_run(scenario: ScenarioFactory, paths: Paths) -> None:
    root = scenario({"n1": "services:\n  a: {}\n  b: {}\n"},
                    services={"n1/a": {"status": "failed"}, "n1/b": ok()})
    run_once(inputs(root), paths, warn=Messages())
    os.unlink(paths.events)
    (root / "world/services/n1/a.json").write_text(json.dumps(ok()))
    run_once(inputs(root, LATER), paths, warn=Messages())
    kinds = [(e["type"], e.get("resync", False)) for e in EventLog(paths.events).read()]
    assert kinds == [("reconcile_required", True), ("supervisor_summary", True),
                     ("reconcile_resolved", False), ("supervisor_summary", False)]
    instance = default_instance(root / "hosts", paths.checkpoint)
    assert replay_file(paths.events, instance) == {}


# -- 11. a year of log: replay streams ---------------------------------------------------------

def write_history(path: Path, lines: int, fingerprints: int = 100) -> None:
    """`lines` lines of one instance cycling through `fingerprints` recommendations."""
    with path.open("w") as handle:
        for number in range(lines):
            fingerprint = f"{number % fingerprints:016x}"
            line: dict[str, Any] = {
                "ts": NOW, "source": SOURCE, "instance": "lab", "fingerprint": fingerprint,
                "run_id": f"{number:012x}", "id": f"{number:016x}", "opened_at": NOW,
                "subject": {"kind": "service", "id": f"n1/s{fingerprint}"},
                "condition": "unhealthy_service", "action": "redeploy", "severity": "warning",
                "rule": "service-unhealthy", "reason": "x" * 600}
            line["type"] = "reconcile_resolved" if number % 7 == 3 else "reconcile_required"
            handle.write(json.dumps(line) + "\n")


def peak_of_replay(path: Path) -> tuple[int, int]:
    import tracemalloc

    state = LogState("lab")
    tracemalloc.start()
    try:
        EventLog(path).replay(state)
        return tracemalloc.get_traced_memory()[1], len(state.open)
    finally:
        tracemalloc.stop()


def test_replay_memory_follows_the_open_set_not_the_log(tmp_path: Path) -> None:
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    write_history(small, 2_500)
    write_history(large, 20_000)
    small_peak, small_open = peak_of_replay(small)
    large_peak, large_open = peak_of_replay(large)
    assert small_open == large_open > 50
    assert large.stat().st_size > 15_000_000
    # Reading the whole file at once (as replay once did) would peak above its size.
    assert large_peak < small_peak * 1.5 < 4_000_000


def test_the_instance_comes_from_the_option_or_the_environment(paths: Paths) -> None:
    from typer.testing import CliRunner

    from supervisor.cli import app

    args = ["run", str(FIXTURES / "homelab"), "--now", NOW, "-q", "--events", str(paths.events),
            "--checkpoint", str(paths.checkpoint)]
    result = CliRunner().invoke(app, args, env={"SUPERVISOR_INSTANCE": "site-b"})
    assert result.exit_code == 0, result.output
    assert {e["instance"] for e in EventLog(paths.events).read()} == {"site-b"}
    result = CliRunner().invoke(app, [*args, "--instance", "site b"])
    assert result.exit_code == 2
    assert result.stderr.startswith("--instance: 'site b' is not a name: up to 64 letters")
