"""The notifier's cursor: reading the log across rotations, transitions exactly once, the
outbox kept until a receiver accepts."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support.eventlines import Writer, recommendation

from supervisor.errors import SupervisorError
from supervisor.notify import Undelivered
from supervisor.notify.cursor import Batch, Cursor, held, load, save
from supervisor.notify.deliver import Delivery
from supervisor.notify.feed import Feed

T0, T1, T2, T3 = (f"2026-11-26T10:0{minute}:00Z" for minute in range(4))


class Recorder:
    """A receiver that records what it accepted, and can be made to refuse."""

    name = "recorder"
    refresh_interval: float | None = None

    def __init__(self, receivers: tuple[str, ...] = ("r",)) -> None:
        self.receivers = list(receivers)
        self.down: set[str] = set()
        self.got: dict[str, list[list[tuple[str, str]]]] = {name: [] for name in receivers}

    def describe(self, receiver: str) -> str:
        return receiver

    def send(self, receiver: str, batches: list[Batch],
             open_now: Mapping[str, dict[str, Any]]) -> int:
        if receiver in self.down:
            raise Undelivered("down")
        for batch in batches:
            self.got[receiver].append([(t.kind, t.line["subject"]["id"])
                                       for t in batch.transitions])
        return len(batches)


def delivery(tmp_path: Path, notifier: Recorder, *, keep_open: bool = False,
             instance: str | None = None) -> Delivery:
    state = tmp_path / "state.json"
    cursor = load(state, notifier.name)
    return Delivery(notifier, Feed(tmp_path / "events.log", cursor.position, keep_open=keep_open),
                    cursor, state, instance=instance, warn=lambda _: None)


def again(tmp_path: Path, notifier: Recorder, **options: Any) -> Delivery:
    """A new process: everything comes from the state file."""
    return delivery(tmp_path, notifier, **options)


def test_each_transition_once_across_restarts(tmp_path: Path) -> None:
    log, notifier = Writer(tmp_path / "events.log"), Recorder()
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db")])
    assert delivery(tmp_path, notifier).step()
    assert again(tmp_path, notifier).step()  # nothing new
    log.run(T1, resolved=["nas01/db"], opened=[recommendation("nas01/web", action="diagnostics",
                                                              severity="critical")])
    assert again(tmp_path, notifier).step()
    assert notifier.got["r"] == [[("opened", "nas01/web"), ("opened", "nas01/db")],
                                 [("changed", "nas01/web"), ("resolved", "nas01/db")]]


def test_a_line_written_again_after_a_crash_is_not_a_transition(tmp_path: Path) -> None:
    log, notifier = Writer(tmp_path / "events.log"), Recorder()
    log.run(T0, opened=[recommendation("nas01/web")])
    lines = (tmp_path / "events.log").read_text()
    with (tmp_path / "events.log").open("a") as handle:
        handle.write(lines)  # the same transition, same id
    assert delivery(tmp_path, notifier).step()
    assert notifier.got["r"] == [[("opened", "nas01/web")]]


def test_nothing_is_marked_delivered_before_the_receiver_accepts(tmp_path: Path) -> None:
    log, notifier = Writer(tmp_path / "events.log"), Recorder(("a", "b"))
    log.run(T0, opened=[recommendation("nas01/web")])
    notifier.down = {"b"}
    assert not delivery(tmp_path, notifier).step()
    log.run(T1, resolved=["nas01/web"])
    assert not again(tmp_path, notifier).step()  # a new process: b's outbox survived
    notifier.down = set()
    assert again(tmp_path, notifier).step()
    assert notifier.got["a"] == notifier.got["b"] == [[("opened", "nas01/web")],
                                                     [("resolved", "nas01/web")]]
    assert json.loads((tmp_path / "state.json").read_text())["outbox"] == []


def test_backoff_doubles_up_to_the_limit(tmp_path: Path) -> None:
    log, notifier = Writer(tmp_path / "events.log"), Recorder()
    log.run(T0, opened=[recommendation("nas01/web")])
    now = [0.0]
    run = delivery(tmp_path, notifier)
    run.clock, run.retry_max = (lambda: now[0]), 4.0
    notifier.down = {"r"}
    waits = []
    for _ in range(5):
        assert not run.step()
        waits.append(run.retries["r"].next_at - now[0])
        now[0] = run.retries["r"].next_at
    assert waits == [1.0, 2.0, 4.0, 4.0, 4.0]
    now[0] -= 0.5
    notifier.down = set()
    assert not run.step()  # still waiting
    now[0] += 0.5
    assert run.step()
    assert notifier.got["r"] == [[("opened", "nas01/web")]]


def rotate_by_rename(log: Path) -> None:
    os.rename(log, log.with_name(log.name + ".1"))


def rotate_by_copytruncate(log: Path) -> None:
    shutil.copy(log, log.with_name(log.name + ".1"))
    with log.open("r+") as handle:
        handle.truncate(0)


@pytest.mark.parametrize("rotate", [rotate_by_rename, rotate_by_copytruncate, os.unlink])
def test_after_rotation_resync_lines_are_not_sent_again_and_missed_resolutions_are(
        tmp_path: Path, rotate: Any) -> None:
    path = tmp_path / "events.log"
    log, notifier = Writer(path), Recorder()
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db"),
                        recommendation("nas01/cache")])
    assert delivery(tmp_path, notifier).step()
    log.run(T1, resolved=["nas01/db"])  # never read by the notifier: rotated away first
    rotate(path)
    assert again(tmp_path, notifier).step()  # no log, or an empty one: nothing to say yet
    log.run(T2, resync=True, opened=[recommendation("nas01/proxy")])
    assert again(tmp_path, notifier).step()
    assert notifier.got["r"][1:] == [[("opened", "nas01/proxy"), ("resolved", "nas01/db")]]
    log.run(T3, resolved=["nas01/web"])
    assert again(tmp_path, notifier).step()
    assert notifier.got["r"][2:] == [[("resolved", "nas01/web")]]


def test_a_log_truncated_and_refilled_past_the_offset_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    log, notifier = Writer(path), Recorder()
    log.run(T0, opened=[recommendation("nas01/web")])
    assert delivery(tmp_path, notifier).step()
    rotate_by_copytruncate(path)
    log.open.clear()  # resolved in lines lost to the rotation
    log.run(T1, opened=[recommendation(f"big/s{n}", reason="x" * 50) for n in range(20)])
    assert again(tmp_path, notifier).step()
    assert notifier.got["r"][1] == [*(("opened", f"big/s{n}") for n in range(20)),
                                    ("resolved", "nas01/web")]


def test_following_reads_the_rest_of_a_log_renamed_away(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    log, notifier = Writer(path), Recorder()
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db")])
    run = delivery(tmp_path, notifier, keep_open=True)
    assert run.step()
    log.run(T1, resolved=["nas01/db"])
    rotate_by_rename(path)
    log.run(T2, resync=True)
    assert run.step()
    assert notifier.got["r"][1:] == [[("resolved", "nas01/db")]]


def test_foreign_broken_and_partial_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.log"
    log, notifier = Writer(path), Recorder()
    other = Writer(path, instance="site-b")
    log.run(T0, opened=[recommendation("nas01/web")])
    other.run(T0, opened=[recommendation("far/away")])
    with path.open("a") as handle:
        handle.write('{"source": "something-else", "type": "reconcile_required"}\n'
                     'not json\n'
                     '{"source": "runtime-supervisor", "type": "reconcile_required"}\n'
                     '{"source": "runtime-supervisor", "type": "reconcile_req')
    warnings: list[str] = []
    run = delivery(tmp_path, notifier, instance="lab")
    run.warn = warnings.append
    assert run.step()
    assert notifier.got["r"] == [[("opened", "nas01/web")]]
    assert warnings == [f"{path}: skipped 2 line(s) that are not whole supervisor events"]
    with path.open("a") as handle:  # the partial line completes
        handle.write('uired"}\n')
    assert run.step()
    assert load(tmp_path / "state.json", "recorder").position.offset == path.stat().st_size


def test_state_of_another_notifier_or_held_by_another_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    save(state, Cursor("alertmanager"))
    with pytest.raises(SupervisorError, match="belongs to the alertmanager notifier"):
        load(state, "apprise")
    state.write_text("{}")
    with pytest.raises(SupervisorError, match="is not a notifier state file"):
        load(state, "apprise")
    with held(state), pytest.raises(SupervisorError, match="another notifier is using"), \
            held(state):
        pass
