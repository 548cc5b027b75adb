"""What `run --watch` hears of changes: real paths, bursts whole, hidden and ignored files left
out, and "look at everything" where a change cannot be named. On the kernel's inotify, and on
watchfiles where inotify is missing. With inotify, a swap on the way to an input and a signal
wake the wait at once: the tests below that rely on it wait an hour, under a deadline."""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from supervisor import changes as changes_module
from supervisor.changes import Changes, Found

TIMEOUT_MS = 2000
HOUR_MS = 3_600_000  # a wait that only an event or a signal ends, within the deadline
DEADLINE_S = 30


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


@pytest.fixture
def deadline() -> Iterator[None]:
    """Ends a wait that should have ended already with an error rather than a hung test."""

    def late(number: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"still waiting after {DEADLINE_S} s")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(DEADLINE_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def watching(roots: list[Path], ignored: set[str] | None = None,
             inputs: list[Path] | None = None) -> Changes:
    return Changes([str(root) for root in roots], ignored or set(), step_ms=50,
                   debounce_ms=1000, inputs=[str(path) for path in inputs or []])


def next_change(changes: Changes) -> Found:
    """The next wait that found something (a fresh watcher may first report its own set-up)."""
    for _ in range(5):
        found = changes.wait(TIMEOUT_MS)
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
        assert changes.wait(TIMEOUT_MS) == set()


def test_a_heartbeat_longer_than_poll_takes_is_waited_for(tree: Path, backend: str) -> None:
    with watching([tree]) as changes:
        (tree / "world.json").write_text("{}")
        assert changes.wait(10**12) == {str(tree / "world.json")}  # 31 years: no OverflowError


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


@pytest.fixture
def snapshots(tmp_path: Path) -> Path:
    """An observer's lab: the world a symlink to the current snapshot."""
    lab = tmp_path / "lab"
    for snapshot in ("1", "2"):
        (lab / "snapshots" / snapshot / "services").mkdir(parents=True)
    (lab / "world").symlink_to(Path("snapshots") / "1")
    return lab


def swap(link: Path, target: Path) -> None:
    """As an observer publishes a snapshot: a new symlink renamed over the old one."""
    temporary = link.with_name(f".{link.name}.tmp")
    temporary.symlink_to(target)
    os.replace(temporary, link)


def test_a_symlink_swapped_on_the_way_to_an_input_wakes_the_wait(snapshots: Path,
                                                                  deadline: None) -> None:
    world = snapshots / "world"
    with watching([world.resolve()], inputs=[world]) as changes:
        assert not changes.must_look
        swap(world, Path("snapshots") / "2")
        assert changes.wait(HOUR_MS) == set()  # nothing under the old snapshot changed
        assert changes.rerouted


def test_a_link_further_on_the_way_is_watched_too(snapshots: Path, deadline: None) -> None:
    """world -> current -> snapshots/1: swapping `current` reroutes `world`."""
    world = snapshots / "world"
    (snapshots / "current").symlink_to(Path("snapshots") / "1")
    swap(world, Path("current"))
    with watching([world.resolve()], inputs=[world]) as changes:
        swap(snapshots / "current", Path("snapshots") / "2")
        changes.wait(HOUR_MS)
        assert changes.rerouted


def test_a_directory_renamed_into_place_wakes_the_wait_even_from_a_hidden_name(
        tree: Path, deadline: None) -> None:
    new = tree.with_name(".world.new")
    new.mkdir()
    with watching([tree], inputs=[tree]) as changes:
        tree.rename(tree.with_name("world.old"))
        new.rename(tree)
        changes.wait(HOUR_MS)
        assert changes.rerouted


def test_other_names_beside_an_input_are_no_swap(tree: Path, deadline: None) -> None:
    with watching([tree], inputs=[tree]) as changes:
        sibling = tree.with_name("world.tmp")
        sibling.write_text("{}")
        sibling.rename(tree.with_name("world.old"))
        (tree / "world.json").write_text('{"observed_at": "2026-11-26T10:00:00Z"}')
        assert changes.wait(HOUR_MS) == {str(tree / "world.json")}
        assert not changes.rerouted


def test_an_input_that_appears_wakes_the_wait(tmp_path: Path, deadline: None) -> None:
    rules = tmp_path / "rules.yaml"
    with watching([], inputs=[rules]) as changes:
        assert not changes.must_look  # only the last name is missing: its creation is seen
        rules.write_text("rules: []\n")
        changes.wait(HOUR_MS)
        assert changes.rerouted


def test_a_way_that_cannot_be_watched_whole_asks_the_caller_to_look(tmp_path: Path) -> None:
    with watching([], inputs=[tmp_path / "absent" / "world"]) as changes:
        assert changes.must_look  # `world` may appear in `absent` unseen
    (tmp_path / "loop").symlink_to("loop")
    with watching([], inputs=[tmp_path / "loop"]) as changes:
        assert changes.must_look
    with watching([], inputs=[tmp_path]) as changes:
        assert not changes.must_look


def test_a_signal_wakes_the_wait_and_the_previous_wakeup_fd_comes_back(
        tree: Path, deadline: None) -> None:
    received: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda number, frame: received.append(number))
    before = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(before)
    try:
        with watching([tree], inputs=[tree]) as changes:
            timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGUSR1))
            timer.start()
            assert changes.wait(HOUR_MS) == set()  # the caller looks at its stopper
            timer.join()
            assert received == [signal.SIGUSR1]
            (tree / "world.json").write_text("{}")  # and the next wait hears changes again
            assert changes.wait(HOUR_MS) == {str(tree / "world.json")}
        assert signal.set_wakeup_fd(before) == before
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_outside_the_main_thread_signals_are_not_heard_and_the_caller_looks(tree: Path) -> None:
    seen: list[bool] = []

    def watch() -> None:
        with watching([tree], inputs=[tree]) as changes:
            seen.append(changes.must_look)

    thread = threading.Thread(target=watch)
    thread.start()
    thread.join()
    assert seen == [True]


def test_without_inotify_the_caller_looks(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes_module, "_inotify", lambda: None)
    with watching([tree], inputs=[tree]) as changes:
        assert changes.must_look
