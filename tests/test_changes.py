"""What `run --watch` hears of changes: real paths, bursts whole, hidden and ignored files left
out, and "look at everything" where a change cannot be named. On the kernel's inotify, and on
watchfiles where inotify is missing."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import changes as changes_module
from supervisor.changes import Changes, Found

TIMEOUT_MS = 2000


def rewrite(path: Path, text: str) -> None:
    """As an observer publishes a record: a hidden temporary renamed over the old file."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "world"
    (root / "services" / "n1").mkdir(parents=True)
    (root / "services" / "n1" / "web.json").write_text("{}")
    (root / "world.json").write_text("{}")
    return Path(os.path.realpath(root))


@pytest.fixture(params=["inotify", "watchfiles"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "watchfiles":
        monkeypatch.setattr(changes_module, "_inotify", lambda: None)
        yield "watchfiles"  # its Rust thread lets go of its descriptors in its own time
        return
    before = len(os.listdir("/proc/self/fd"))
    yield "inotify"
    assert len(os.listdir("/proc/self/fd")) <= before  # the inotify descriptor is closed


def watching(roots: list[Path], ignored: set[str] | None = None) -> Changes:
    return Changes([str(root) for root in roots], ignored or set(), step_ms=50,
                   debounce_ms=1000, timeout_ms=TIMEOUT_MS)


def next_change(changes: Changes) -> Found:
    """The next wait that found something (a fresh watcher may first report its own set-up)."""
    for _ in range(5):
        found = changes.wait()
        if found != set():
            return found
    return set()


def test_a_rewritten_record_is_named_by_its_real_path(tree: Path, backend: str) -> None:
    record = tree / "services" / "n1" / "web.json"
    with watching([tree]) as changes:
        rewrite(record, '{"status": "ok"}')
        assert next_change(changes) == {str(record)}  # the hidden temporary is left out


def test_a_write_in_place_and_a_burst_come_whole(tree: Path, backend: str) -> None:
    record = tree / "services" / "n1" / "web.json"
    with watching([tree]) as changes:
        for index in range(20):
            (tree / "services" / "n1" / f"svc{index}.json").write_text("{}")
        record.write_text('{"status": "failed"}')
        found = next_change(changes)
        assert found is not None and str(record) in found and len(found) == 21


def test_nothing_changed_is_an_empty_set_after_the_timeout(tree: Path) -> None:
    with watching([tree]) as changes:
        assert changes.wait() == set()


def test_the_supervisors_own_files_are_left_out(tree: Path, backend: str) -> None:
    state = tree / "checkpoint.json"
    with watching([tree], {str(state)}) as changes:
        state.write_text("{}")
        (tree / "world.json").write_text('{"observed_at": "2026-11-26T10:00:00Z"}')
        assert next_change(changes) == {str(tree / "world.json")}


def test_a_rule_file_given_alone_is_watched(tmp_path: Path, backend: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: []\n")
    with watching([rules]) as changes:
        rules.write_text("rules: []  # edited\n")
        assert next_change(changes) == {str(rules)}


def test_a_new_directory_is_watched_and_said_to_be_unknown(tree: Path) -> None:
    with watching([tree]) as changes:
        (tree / "services" / "n2").mkdir()
        assert next_change(changes) is None  # files may be in it before its watch was set
        record = tree / "services" / "n2" / "db.json"
        rewrite(record, "{}")
        assert next_change(changes) == {str(record)}


def test_a_watch_that_cannot_be_set_leaves_changes_unnamed(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = changes_module._inotify()

    class Limited(module.INotify):  # type: ignore[misc, name-defined]
        def add_watch(self, path: Any, mask: int) -> int:
            if str(path).endswith("n1"):
                raise OSError(errno.ENOSPC, "no space left on device")
            return int(super().add_watch(path, mask))

    class Module:
        INotify, flags = Limited, module.flags

    monkeypatch.setattr(changes_module, "_inotify", lambda: Module)
    with watching([tree]) as changes:
        (tree / "world.json").write_text("{}")
        assert next_change(changes) is None  # seen, but what else changed cannot be said
