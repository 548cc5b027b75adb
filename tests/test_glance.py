"""An unchanged `run --once` finds so at a glance: from the cache, without reading the
checkpoint, while the checkpoint and the log are exactly as the last run left them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.scenarios import FIXTURES, ScenarioFactory, ok
from typer.testing import CliRunner

from supervisor import cache
from supervisor import checkpoint as checkpoint_module
from supervisor.cli import app
from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs
from supervisor.transitions import Paths, run_once

NOW = "2026-11-26T10:01:00Z"


def inputs(directory: Path) -> Inputs:
    return Inputs(inventory=directory / "hosts", world=directory / "world", now=NOW)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "state").mkdir()
    return Paths(events=tmp_path / "state" / "events.log",
                 checkpoint=tmp_path / "state" / "checkpoint.json")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The checkpoint reads from here on."""
    seen: list[Path] = []
    read = checkpoint_module._read
    monkeypatch.setattr(checkpoint_module, "_read",
                        lambda path, warn: seen.append(path) or read(path, warn))
    return seen


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stamp is trusted, however recent: the stamps alone must tell every change."""
    monkeypatch.setattr(cache, "RACY_NS", -(1 << 62))


def quiet(message: str) -> None:
    del message


@pytest.mark.usefixtures("settled")
def test_an_unchanged_run_reads_no_checkpoint(paths: Paths, reads: list[Path]) -> None:
    first = run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    assert not first.skipped
    reads.clear()
    again = run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    assert again.skipped and reads == []
    assert (again.summary, again.open, again.observed_at) == (first.summary, first.open,
                                                              first.observed_at)
    assert again.line().endswith("inputs unchanged, nothing to do")


def test_files_written_within_the_clock_s_grain_are_read(paths: Paths, reads: list[Path]) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    reads.clear()
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True).skipped
    assert reads == [paths.checkpoint]


@pytest.mark.usefixtures("settled")
def test_without_at_a_glance_the_checkpoint_is_read(paths: Paths, reads: list[Path]) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    reads.clear()
    report = run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet)
    assert report.skipped and reads == [paths.checkpoint]
    assert len(report.open_entries) == report.open > 0  # what the metrics list


@pytest.mark.usefixtures("settled")
def test_another_run_in_between_is_noticed(scenario: ScenarioFactory, paths: Paths) -> None:
    """Inputs X, then Y evaluated by a run that keeps no glance, then X again: X's glance would
    say "unchanged" though the log now says Y."""
    root = scenario({"n1": "services:\n  a: {}\n"}, services={"n1/a": {"status": "failed"}})
    record = root / "world/services/n1/a.json"
    failing = record.read_text()
    run_once(inputs(root), paths, warn=quiet, at_a_glance=True)
    record.write_text(json.dumps(ok()))
    run_once(inputs(root), paths, warn=quiet)
    record.write_text(failing)
    assert not run_once(inputs(root), paths, warn=quiet, at_a_glance=True).skipped
    assert [event["type"] for event in EventLog(paths.events).read()] == [
        "reconcile_required", "supervisor_summary", "reconcile_resolved", "supervisor_summary",
        "reconcile_required", "supervisor_summary"]


@pytest.mark.usefixtures("settled")
def test_another_writer_s_line_is_noticed(paths: Paths, reads: list[Path]) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    reads.clear()
    with paths.events.open("a") as log:
        log.write('{"source": "someone-else", "type": "note"}\n')
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True).skipped
    assert reads == [paths.checkpoint]  # read again, and at a glance from then on
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True).skipped
    assert reads == [paths.checkpoint]


@pytest.mark.usefixtures("settled")
def test_a_rotated_log_gets_its_resync(paths: Paths) -> None:
    first = run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    paths.events.write_text("")  # copytruncate
    messages: list[str] = []
    report = run_once(inputs(FIXTURES / "homelab"), paths, warn=messages.append,
                      at_a_glance=True)
    assert report.skipped and "rotated" in messages[0]
    assert len([line for line in EventLog(paths.events).read()
                if line["type"].startswith("reconcile_")]) == first.open


@pytest.mark.usefixtures("settled")
def test_a_corrupt_glance_is_ignored(paths: Paths, reads: list[Path], tmp_path: Path) -> None:
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    reads.clear()
    folder = cache.directory()
    assert folder is not None
    (kept,) = folder.glob("checkpoint-*.json")
    kept.write_bytes(kept.read_bytes().replace(b'"summary"', b'"summery"'))
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True).skipped
    assert reads == [paths.checkpoint]


@pytest.mark.usefixtures("settled")
def test_an_unchanged_run_still_writes_every_open_recommendation_s_metric(
        paths: Paths, tmp_path: Path) -> None:
    homelab = FIXTURES / "homelab"
    argv = ["run", "--once", "--inventory", str(homelab / "hosts"), "--world",
            str(homelab / "world"), "--now", NOW, "--events", str(paths.events),
            "--checkpoint", str(paths.checkpoint)]
    runner = CliRunner()
    assert runner.invoke(app, argv).exit_code == 0
    assert "nothing to do" in runner.invoke(app, argv).output  # at a glance
    metrics = tmp_path / "supervisor.prom"
    result = runner.invoke(app, [*argv, "--metrics-file", str(metrics)])
    assert result.exit_code == 0, result.output
    series = [line for line in metrics.read_text().splitlines()
              if line.startswith("supervisor_recommendation{")]
    assert len(series) == len(checkpoint_module._read(paths.checkpoint, quiet).state.open) > 0


@pytest.mark.usefixtures("settled")
@pytest.mark.parametrize("field, value", [("valid_until", 12), ("valid_until", "tomorrow"),
                                          ("open", "7"), ("inputs_digest", ["x"])])
def test_a_glance_of_another_shape_is_ignored(paths: Paths, reads: list[Path], field: str,
                                              value: object) -> None:
    """Well-formed for the cache (its hash holds), but not what a run writes: never trusted,
    never a traceback."""
    run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True)
    folder = cache.directory()
    assert folder is not None
    (kept,) = folder.glob("checkpoint-*.json")
    entries = cache.read(kept, cache.identity(None))
    assert entries is not None
    entries["glance"][field] = value
    cache.write(kept, cache.identity(None), entries)
    reads.clear()
    assert run_once(inputs(FIXTURES / "homelab"), paths, warn=quiet, at_a_glance=True).skipped
    assert reads == [paths.checkpoint]
