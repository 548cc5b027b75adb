"""The world writer every observer uses: one observation, one consistent snapshot."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from supervisor.observe import snapshot
from supervisor.observe.snapshot import (
    NodeObservation,
    Observation,
    SnapshotError,
    record_stem,
    write_snapshot,
)
from supervisor.world import load_world

T1 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
T2 = datetime(2026, 11, 26, 10, 1, tzinfo=UTC)


def online(services: dict[str, dict[str, Any]], at: datetime = T1) -> NodeObservation:
    return NodeObservation(status="online", last_seen=at, services=services)


def observation(at: datetime = T1, **nodes: NodeObservation) -> Observation:
    return Observation(observed_at=at, observer={"name": "test", "version": "1"}, nodes=nodes)


def files(root: Path) -> dict[str, Any]:
    return {str(p.relative_to(root)): json.loads(p.read_text())
            for p in sorted(root.rglob("*.json"))}


def test_writes_the_world_layout_that_eval_reads(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"}})))
    assert files(tmp_path) == {
        "world.json": {"observed_at": "2026-11-26T10:00:00Z",
                       "observer": {"name": "test", "version": "1"}},
        "nodes/nas01.json": {"status": "online", "last_seen": "2026-11-26T10:00:00Z"},
        "services/nas01/web.json": {"status": "ok"},
    }
    world = load_world(tmp_path)
    assert world.services == {"nas01/web": {"status": "ok"}}
    assert world.observed_at == T1


def test_world_json_is_written_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    replace = snapshot._replace
    monkeypatch.setattr(snapshot, "_replace",
                        lambda path, content: (order.append(path.name), replace(path, content)))
    write_snapshot(tmp_path, observation(a=online({"x": {"status": "ok"}}),
                                         b=online({"y": {"status": "ok"}})))
    assert order[-1] == "world.json"
    assert sorted(order[:-1]) == ["a.json", "b.json", "x.json", "y.json"]


def test_a_failed_write_leaves_the_previous_snapshot_current(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"}})))
    replace = snapshot._replace

    def failing(path: Path, content: bytes) -> None:
        if path.name == "db.json":
            raise SnapshotError("disk full")
        replace(path, content)

    monkeypatch.setattr(snapshot, "_replace", failing)
    with pytest.raises(SnapshotError):
        write_snapshot(tmp_path, observation(T2, nas01=online({"db": {"status": "ok"},
                                                               "web": {"status": "ok"}}, T2)))
    assert files(tmp_path)["world.json"]["observed_at"] == "2026-11-26T10:00:00Z"
    assert "services/nas01/web.json" in files(tmp_path)


def test_records_of_vanished_services_and_nodes_are_removed(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"},
                                                       "db": {"status": "ok"}}),
                                         old=online({"x": {"status": "ok"}})))
    written = write_snapshot(tmp_path, observation(T2, nas01=online({"web": {"status": "ok"}},
                                                                     T2)))
    assert sorted(files(tmp_path)) == ["nodes/nas01.json", "services/nas01/web.json",
                                       "world.json"]
    assert not (tmp_path / "services" / "old").exists()
    assert sorted(written.removed) == ["nodes/old.json", "services/nas01/db.json",
                                       "services/old/x.json"]


def test_a_node_its_source_could_not_see_keeps_its_records_and_last_seen(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "failed"}})))
    write_snapshot(tmp_path, observation(T2, nas01=NodeObservation(status="offline")))
    assert files(tmp_path)["nodes/nas01.json"] == {"status": "offline",
                                                   "last_seen": "2026-11-26T10:00:00Z"}
    assert files(tmp_path)["services/nas01/web.json"] == {"status": "failed"}
    assert files(tmp_path)["world.json"]["observed_at"] == "2026-11-26T10:01:00Z"


def test_a_node_never_seen_has_no_last_seen_and_the_world_stays_valid(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=NodeObservation(status="offline")))
    assert files(tmp_path)["nodes/nas01.json"] == {"status": "offline"}
    assert load_world(tmp_path).nodes == {"nas01": {"status": "offline"}}


def test_unchanged_records_are_not_rewritten(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"}})))
    before = (tmp_path / "services/nas01/web.json").stat().st_ino
    written = write_snapshot(tmp_path, observation(T2, nas01=online({"web": {"status": "ok"}},
                                                                    T2)))
    assert written.written == ["nodes/nas01.json", "world.json"]
    assert written.unchanged == 1
    assert (tmp_path / "services/nas01/web.json").stat().st_ino == before


def test_the_same_observation_gives_the_same_bytes(tmp_path: Path) -> None:
    seen = observation(nas01=online({"web": {"status": "ok", "b": 1, "a": [2, 1]}}))
    write_snapshot(tmp_path / "one", seen)
    write_snapshot(tmp_path / "two", seen)
    for name in ("world.json", "nodes/nas01.json", "services/nas01/web.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert (tmp_path / "one/services/nas01/web.json").read_text() == (
        '{\n  "a": [\n    2,\n    1\n  ],\n  "b": 1,\n  "status": "ok"\n}\n')


def test_incidents_are_replaced_only_by_a_source_that_observes_them(tmp_path: Path) -> None:
    incident = {"id": "alert/7 disk", "subject": "nas01", "status": "open",
                "severity": "warning", "opened_at": "2026-11-26T09:00:00Z"}
    first = Observation(T1, {"name": "t"}, {"nas01": online({})}, incidents=[incident])
    write_snapshot(tmp_path, first)
    stem = record_stem("alert/7 disk")
    assert stem.startswith("id-") and "/" not in stem
    assert files(tmp_path)[f"incidents/{stem}.json"] == incident
    write_snapshot(tmp_path, Observation(T2, {"name": "t"}, {"nas01": online({}, T2)}))
    assert f"incidents/{stem}.json" in files(tmp_path)  # incidents=None: not this source's
    write_snapshot(tmp_path, Observation(T2, {"name": "t"}, {"nas01": online({}, T2)},
                                         incidents=[]))
    assert not any(name.startswith("incidents/") for name in files(tmp_path))


@pytest.mark.parametrize(("nodes", "message"), [
    ({"NAS": online({})}, "node 'NAS': is not a valid node name"),
    ({"nas01": online({"My App": {"status": "ok"}})}, "service name 'My App' is not valid"),
    ({"nas01": NodeObservation(status="up")}, "status 'up' is not one of"),
])
def test_bad_names_are_refused_before_anything_is_written(
        tmp_path: Path, nodes: dict[str, NodeObservation], message: str) -> None:
    with pytest.raises(SnapshotError) as raised:
        write_snapshot(tmp_path / "world", Observation(T1, {}, nodes))
    assert message in str(raised.value)
    assert not (tmp_path / "world").exists()


def test_the_lock_file_is_the_one_the_reader_shares() -> None:
    from supervisor import world

    assert snapshot.LOCK_FILE == world.LOCK_FILE


def test_a_read_waits_for_the_snapshot_being_written(tmp_path: Path) -> None:
    """Mid-snapshot (a record new, world.json not yet): a read started then gets the whole
    new snapshot once the writer is done, never the mix."""
    import fcntl
    import os
    import threading

    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"}})))
    lock = os.open(tmp_path / snapshot.LOCK_FILE, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # the writer's hold, as write_snapshot takes it
    try:
        (tmp_path / "services/nas01/web.json").write_text('{"status": "failed"}')
        read: list[Any] = []
        reader = threading.Thread(target=lambda: read.append(load_world(tmp_path)))
        reader.start()
        reader.join(0.5)
        assert reader.is_alive(), "the read did not wait for the writer"
        (tmp_path / "world.json").write_text(
            '{"observed_at": "2026-11-26T10:01:00Z", "observer": {"name": "test"}}')
    finally:
        os.close(lock)
    reader.join(30)
    assert read[0].observed_at == T2
    assert read[0].services == {"nas01/web": {"status": "failed"}}


def test_a_lock_file_the_reader_may_not_open_is_no_obstacle(tmp_path: Path) -> None:
    write_snapshot(tmp_path, observation(nas01=online({"web": {"status": "ok"}})))
    (tmp_path / snapshot.LOCK_FILE).unlink()
    (tmp_path / snapshot.LOCK_FILE).mkdir()  # something else in its place
    assert load_world(tmp_path).services == {"nas01/web": {"status": "ok"}}


def test_an_incident_without_an_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError, match="incidents: a record has no id"):
        write_snapshot(tmp_path, Observation(T1, {}, {}, incidents=[{"subject": "n"}]))
