"""Which inputs changed: stat first, each file read at most once per run."""

from __future__ import annotations

import collections
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES

from supervisor import cache
from supervisor.inputs import Inputs
from supervisor.manifest import Check
from supervisor.transitions import Paths, run_once

NOW = "2026-11-26T10:01:00Z"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "RACY_NS", -1)  # files written a moment ago count as settled
    shutil.copytree(FIXTURES / "homelab", tmp_path / "homelab")
    return tmp_path / "homelab"


def inputs(lab: Path) -> Inputs:
    return Inputs(inventory=lab / "hosts", world=lab / "world", now=NOW)


def paths(lab: Path) -> Paths:
    return Paths(events=lab.parent / "events.log", checkpoint=lab.parent / "checkpoint.json")


def check(lab: Path) -> Check:
    found = Check(inputs(lab))
    found.save()
    return found


def record(lab: Path) -> Path:
    return lab / "world" / "services" / "media01" / "sonarr.json"


def test_unchanged_inputs_are_not_read(lab: Path) -> None:
    first = check(lab)
    assert first.changed > 0 and first.reading.read  # nothing known yet: all read, once
    again = check(lab)
    assert (again.changed, again.reading.read, again.digest) == (0, {}, first.digest)


def test_only_a_changed_file_is_read_again(lab: Path) -> None:
    first = check(lab)
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    again = check(lab)
    assert list(again.reading.read) == [str(record(lab))]
    assert again.digest != first.digest


def test_a_touched_file_with_the_same_content_keeps_the_digest(lab: Path) -> None:
    first = check(lab)
    os.utime(record(lab), ns=(1, 1))
    again = check(lab)
    assert list(again.reading.read) == [str(record(lab))]  # read to be sure...
    assert again.digest == first.digest  # ...and found the same


def test_any_file_under_the_inputs_counts(lab: Path) -> None:
    first = check(lab)
    (lab / "world" / "notes.txt").write_text("not a record, still an input")
    assert check(lab).digest != first.digest


def test_options_count(lab: Path) -> None:
    assert Check(inputs(lab)).digest != Check(inputs(lab)._replace(max_age=5)).digest


def test_without_a_cache_the_digest_is_the_same(lab: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    warm = check(lab)
    monkeypatch.setenv("SUPERVISOR_CACHE", "off")
    assert check(lab).digest == warm.digest


def opened_during(monkeypatch: pytest.MonkeyPatch, lab: Path, action: Any) -> collections.Counter[str]:
    opened: collections.Counter[str] = collections.Counter()
    real = os.open

    def counting(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # Files, not the directories the walk lists.
        if str(path).startswith(str(lab)) and not flags & os.O_DIRECTORY:
            opened[str(path)] += 1
        return real(path, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", counting)
        action()
    return opened


@pytest.mark.parametrize("cached", [True, False])
def test_a_run_opens_each_input_at_most_once(lab: Path, monkeypatch: pytest.MonkeyPatch,
                                             cached: bool) -> None:
    if not cached:
        monkeypatch.setenv("SUPERVISOR_CACHE", "off")
    opened = opened_during(monkeypatch, lab, lambda: run_once(inputs(lab), paths(lab)))
    assert opened and max(opened.values()) == 1
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    opened = opened_during(monkeypatch, lab, lambda: run_once(
        inputs(lab)._replace(now="2026-11-26T10:02:00Z"), paths(lab)))
    if cached:
        assert list(opened) == [str(record(lab))]  # the rest comes from the cache
    else:
        assert opened and max(opened.values()) == 1


def test_an_unchanged_run_is_skipped_and_a_changed_one_is_not(lab: Path) -> None:
    assert not run_once(inputs(lab), paths(lab)).skipped
    assert run_once(inputs(lab), paths(lab)).skipped
    os.utime(record(lab), ns=(1, 1))  # touched, same bytes
    assert run_once(inputs(lab), paths(lab)).skipped
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    assert not run_once(inputs(lab), paths(lab)).skipped
