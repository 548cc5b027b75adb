"""`run --watch` keeps watching the world after an observer replaces it whole, and stops at once.

The processes here look where the inputs lead only every hour (LOOK_MS, patched in the real
process): what they notice, the kernel told them, and a stop does not wait for a look. Where
the kernel cannot tell (the watch limit), the look every LOOK_MS finds a swap."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import pytest
from support import wait_for
from support.scenarios import FIXTURES

from supervisor import changes as changes_module
from supervisor import watching

if TYPE_CHECKING:
    from supervisor.transitions import Stopper


def fail(world: Path, service: str) -> None:
    record = world / "services" / f"{service}.json"
    data = json.loads(record.read_text())
    data["status"] = "failed"
    record.write_text(json.dumps(data))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def supervisor_looking_hourly() -> list[str]:
    """The `supervisor` program, looking where its inputs lead only every hour."""
    program = ("import supervisor.watching as watching; watching.LOOK_MS = 3_600_000; "
               "from supervisor.__main__ import main; main()")
    return [sys.executable, "-c", program]


def start_watching(lab: Path, state: Path, stdout: Path) -> subprocess.Popen[str]:
    """`run --watch` on `lab` with a heartbeat of ten minutes: whatever happens in a test is
    seen by the watch, or not."""
    with stdout.open("w") as out:
        return subprocess.Popen(
            [*supervisor_looking_hourly(), "run", str(lab), "--watch", "--interval", "600",
             "--now", "2026-11-26T10:01:00Z", "--events", str(state / "events.log"),
             "--checkpoint", str(state / "checkpoint.json")],
            stdout=out, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["rename", "symlink"])
def test_watch_follows_a_world_replaced_by_rename_or_symlink_swap(tmp_path: Path, how: str
                                                                  ) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(FIXTURES / "homelab", lab)
    if how == "symlink":
        (lab / "snapshots").mkdir()
        (lab / "world").rename(lab / "snapshots" / "1")
        (lab / "world").symlink_to(Path("snapshots") / "1")
    out = tmp_path / "stdout.txt"
    process = start_watching(lab, tmp_path, out)
    try:
        wait_for(lambda: len(lines(out)) == 1, timeout=60, what="the first run")
        # The observer publishes a new snapshot, in which postgres failed, all at once.
        if how == "rename":
            shutil.copytree(lab / "world", lab / "world.new")
            fail(lab / "world.new", "nas01/postgres")
            (lab / "world").rename(lab / "world.old")
            (lab / "world.new").rename(lab / "world")
            shutil.rmtree(lab / "world.old")
        else:
            shutil.copytree(lab / "snapshots" / "1", lab / "snapshots" / "2")
            fail(lab / "snapshots" / "2", "nas01/postgres")
            (lab / ".world.tmp").symlink_to(Path("snapshots") / "2")
            os.replace(lab / ".world.tmp", lab / "world")
        wait_for(lambda: len(lines(out)) == 2, timeout=60, what="a run after the swap")
        assert "1 reconcile_required" in lines(out)[1]
        # And what is in the new world now is watched: another service fails in it.
        fail(Path(os.path.realpath(lab / "world")), "infra01/gitea")
        wait_for(lambda: len(lines(out)) == 3, timeout=60, what="a run after a change in it")
        assert "no change" not in lines(out)[2] and "reconcile_" in lines(out)[2]
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_a_stop_does_not_wait_for_a_look_or_the_heartbeat(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(FIXTURES / "homelab", lab)
    out = tmp_path / "stdout.txt"
    process = start_watching(lab, tmp_path, out)
    try:
        wait_for(lambda: len(lines(out)) == 1, timeout=60, what="the first run")
    finally:
        process.send_signal(signal.SIGTERM)
        # Waiting 30 s where the next look or heartbeat is ten minutes away.
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.fixture
def deadline() -> Iterator[None]:
    """Ends a watch that should have ended already with an error rather than a hung test."""

    def late(number: int, frame: FrameType | None) -> None:
        raise TimeoutError("still watching after 30 s")

    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class Stop:
    """A stopper without signal handlers, for a watch in this process."""

    def __init__(self) -> None:
        self.event = threading.Event()

    @property
    def stopping(self) -> bool:
        return self.event.is_set()


def test_where_a_swap_may_go_unheard_the_watch_looks_every_look_ms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deadline: None) -> None:
    """The watch limit refuses the watches on the way to the world: the swap is found by the
    look every LOOK_MS (here 50 ms), not left for the heartbeat an hour away."""
    lab = tmp_path / "lab"
    for snapshot in ("1", "2"):
        (lab / "snapshots" / snapshot).mkdir(parents=True)
    world = lab / "world"
    world.symlink_to(Path("snapshots") / "1")
    module = changes_module._inotify()

    class Limited(module.INotify):  # type: ignore[misc, name-defined]
        def add_watch(self, path: Any, mask: int) -> int:
            if mask & module.flags.ONLYDIR:  # a directory on the way to an input
                raise OSError(errno.ENOSPC, "no space left on device")
            return int(super().add_watch(path, mask))

    class Module:
        INotify, flags = Limited, module.flags

    class Swapping(changes_module.Changes):
        """Swaps the world as the first wait begins: after the watch is set up."""

        swapped = False

        def wait(self, timeout_ms: int) -> set[str] | None:
            if not Swapping.swapped:
                Swapping.swapped = True
                (lab / ".world.tmp").symlink_to(Path("snapshots") / "2")
                os.replace(lab / ".world.tmp", world)
            return super().wait(timeout_ms)

    monkeypatch.setattr(changes_module, "_inotify", lambda: Module)
    monkeypatch.setattr(changes_module, "Changes", Swapping)
    monkeypatch.setattr(watching, "LOOK_MS", 50)
    stop, told = Stop(), []

    def noticed(changed: set[str] | None) -> None:
        told.append(changed)
        if len(told) == 2:
            stop.event.set()  # the run after the swap is the last

    watching.watch(lambda: None, [world], set(), 3600.0, cast("Stopper", stop), noticed)
    assert Swapping.swapped and told == [None, None]  # the second: the world was replaced


def test_a_new_way_to_the_same_world_is_watched_from_then_on(tmp_path: Path,
                                                            deadline: None) -> None:
    """world -> link-a -> snapshots/1 becomes world -> link-b -> snapshots/1: the world is the
    same, but link-b is now on the way, and its swap to snapshots/2 must be heard."""
    lab = tmp_path / "lab"
    for snapshot in ("1", "2"):
        (lab / "snapshots" / snapshot).mkdir(parents=True)
    for link in ("link-a", "link-b"):
        (lab / link).symlink_to(Path("snapshots") / "1")
    world = lab / "world"
    world.symlink_to("link-a")

    def swap(link: Path, target: str) -> None:
        (lab / ".swap").symlink_to(target)
        os.replace(lab / ".swap", link)

    swaps = [lambda: swap(world, "link-b"), lambda: swap(lab / "link-b", "snapshots/2")]

    class Swapping(changes_module.Changes):
        """Makes the next swap as a wait begins: after the watches are set up."""

        def wait(self, timeout_ms: int) -> set[str] | None:
            if swaps:
                swaps.pop(0)()
            return super().wait(timeout_ms)

    stop, told = Stop(), []

    def noticed(changed: set[str] | None) -> None:
        told.append(changed)
        if os.path.realpath(world) == str(lab / "snapshots" / "2"):
            stop.event.set()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(changes_module, "Changes", Swapping)
        watching.watch(lambda: None, [world], set(), 3600.0, cast("Stopper", stop), noticed)
    assert not swaps and stop.event.is_set()


def test_a_swap_before_the_watches_are_set_is_run_for(tmp_path: Path, deadline: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The world is swapped as the first run ends, before the watches are set up: no watch
    can hear it, and the world the run read is no longer the world."""
    lab = tmp_path / "lab"
    for snapshot in ("1", "2"):
        (lab / "snapshots" / snapshot).mkdir(parents=True)
    world = lab / "world"
    world.symlink_to(Path("snapshots") / "1")
    monkeypatch.setattr(watching, "LOOK_MS", 3_600_000)
    stop, runs = Stop(), []

    def cycle() -> None:
        runs.append(os.path.realpath(world))
        if len(runs) == 1:
            (lab / ".swap").symlink_to(Path("snapshots") / "2")
            os.replace(lab / ".swap", world)
        else:
            stop.event.set()

    watching.watch(cycle, [world], set(), 3600.0, cast("Stopper", stop))
    assert runs == [str(lab / "snapshots" / "1"), str(lab / "snapshots" / "2")]


def test_early_watches_hear_a_change_during_the_first_run(tmp_path: Path, deadline: None,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An observer writes a record while the first run is under way: run --watch (early) has
    its watches set up already, and runs for it, with that record as the change."""
    world = tmp_path / "world"
    (world / "services" / "n1").mkdir(parents=True)
    record = world / "services" / "n1" / "a.json"
    record.write_text("{}")
    monkeypatch.setattr(watching, "LOOK_MS", 3_600_000)
    stop, told = Stop(), []

    def cycle() -> None:
        if len(told) == 1:
            record.write_text('{"status": "failed"}')  # mid-run
        else:
            stop.event.set()

    watching.watch(cycle, [world], set(), 3600.0, cast("Stopper", stop), told.append,
                   early=True)
    assert told == [None, {str(record)}]


@pytest.mark.parametrize("early", [True, False])
def test_with_nothing_to_watch_the_run_still_happens_once(tmp_path: Path, early: bool) -> None:
    runs: list[None] = []
    watching.watch(lambda: runs.append(None), [tmp_path / "missing"], set(), 3600.0,
                   cast("Stopper", Stop()), early=early)
    assert runs == [None]
