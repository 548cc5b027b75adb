from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import OBSERVED_AT, ok, write_scenario

from supervisor.errors import InputError
from supervisor.world import load_world

DEPLOYMENT = {"id": "d1", "service": "n1/web", "status": "failed",
              "started_at": "2026-11-26T09:00:00Z", "finished_at": "2026-11-26T09:01:00Z"}
INCIDENT = {"id": "i1", "subject": "n1", "status": "open", "severity": "warning",
            "opened_at": "2026-11-26T09:00:00Z", "title": "disk"}


def test_directory_and_single_file_give_the_same_world(tmp_path: Path) -> None:
    directory = write_scenario(
        tmp_path / "dir", {"n1": "services: {}\n"},
        services={"n1/web": {**ok(), "cpu": 3}}, deployments=[DEPLOYMENT], incidents=[INCIDENT],
    ) / "world"
    single = {
        "observed_at": OBSERVED_AT, "observer": {"name": "test", "version": "1"},
        "nodes": {"n1": {"status": "online", "last_seen": "2026-11-26T09:59:00Z"}},
        "services": {"n1/web": {**ok(), "cpu": 3}},
        "deployments": [DEPLOYMENT], "incidents": [INCIDENT],
    }
    (tmp_path / "world.json").write_text(json.dumps(single))
    (tmp_path / "world.yaml").write_text(json.dumps(single))  # JSON is YAML too
    expected = load_world(directory)
    assert load_world(tmp_path / "world.json") == expected
    assert load_world(tmp_path / "world.yaml") == expected
    assert expected.services["n1/web"]["cpu"] == 3


def test_records_are_sorted_by_time(tmp_path: Path) -> None:
    later = {**DEPLOYMENT, "id": "a-later", "started_at": "2026-11-26T09:30:00Z",
             "finished_at": "2026-11-26T09:31:00Z"}
    world = write_scenario(tmp_path, {"n1": "services: {}\n"}, deployments=[later, DEPLOYMENT])
    assert [d["id"] for d in load_world(world / "world").deployments] == ["d1", "a-later"]


def test_every_bad_record_is_reported(tmp_path: Path) -> None:
    root = write_scenario(
        tmp_path, {"n1": "services: {}\n"},
        services={"n1/a": {"status": "broken"}, "n1/b": {"status": "ok", "since": "yesterday"}},
        incidents=[{**INCIDENT, "status": "closed"}],
    )
    (root / "world" / "services" / "n1" / "c.json").write_text('{"status": ')
    with pytest.raises(InputError) as caught:
        load_world(root / "world")
    messages = [str(p) for p in caught.value.problems]
    assert len(messages) == 4
    assert any(m.startswith(f"{root}/world/services/n1/c.json:1:12: invalid JSON") for m in messages)


def test_missing_world_json(tmp_path: Path) -> None:
    (tmp_path / "world").mkdir()
    with pytest.raises(InputError) as caught:
        load_world(tmp_path / "world")
    assert str(caught.value) == f"{tmp_path}/world/world.json: does not exist"


def test_missing_world(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="world snapshot does not exist"):
        load_world(tmp_path / "nope")


def test_temporary_and_foreign_files_are_ignored(tmp_path: Path) -> None:
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    (root / "world" / "services" / "n1" / ".b.json.tmp").write_text("garbage")
    (root / "world" / "services" / "n1" / "README").write_text("notes")
    assert list(load_world(root / "world").services) == ["n1/a"]


def test_single_file_must_be_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text("[]")
    with pytest.raises(InputError, match="must be a mapping"):
        load_world(tmp_path / "world.json")


def test_single_file_services_need_node_ids(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text(json.dumps(
        {"observed_at": OBSERVED_AT, "services": {"web": ok()}}))
    with pytest.raises(InputError, match=r"services\.web: name 'web' is not a service id"):
        load_world(tmp_path / "world.json")


def test_progress_hears_every_thousand_records(tmp_path: Path) -> None:
    services = {f"n1/s{index}": ok() for index in range(2500)}
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services=services)
    heard: list[int] = []
    load_world(root / "world", heard.append)
    assert heard == [1000, 2000]


def test_a_directory_where_a_record_should_be_is_reported(tmp_path: Path) -> None:
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    (root / "world" / "nodes" / "n2.json").mkdir()
    with pytest.raises(InputError, match=r"n2\.json: is a directory, not a record"):
        load_world(root / "world")


def test_a_symlinked_record_directory_is_not_followed(tmp_path: Path) -> None:
    import os

    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    os.rename(root / "world" / "nodes", tmp_path / "nodes-elsewhere")
    os.symlink(tmp_path / "nodes-elsewhere", root / "world" / "nodes")
    with pytest.raises(InputError, match="nodes: is a symlink"):
        load_world(root / "world")


def test_deeply_nested_records_are_refused(tmp_path: Path) -> None:
    deep: Any = 1
    for _ in range(150):
        deep = [deep]
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={
        "n1/a": {**ok(), "extra": deep}})
    with pytest.raises(InputError, match="nested more than 100 levels deep"):
        load_world(root / "world")


def test_a_snapshot_written_during_the_read_is_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor import world as world_module

    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    real = world_module._read_directory
    reads: list[int] = []

    def observer_finishes_a_snapshot_meanwhile(path: Path, progress: Any, view: Any) -> Any:
        document = real(path, progress, view)
        reads.append(1)
        if len(reads) == 1:
            (path / "services" / "n1" / "a.json").write_text(json.dumps({"status": "failed"}))
            (path / "world.json").write_text(json.dumps(
                {"observed_at": "2026-11-26T10:01:00Z", "observer": {"name": "test"}}))
        return document

    monkeypatch.setattr(world_module, "_read_directory", observer_finishes_a_snapshot_meanwhile)
    world = load_world(root / "world")
    assert len(reads) == 2
    assert world.services["n1/a"]["status"] == "failed"
    assert world.observed_at.minute == 1


def test_a_world_that_never_holds_still_is_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor import world as world_module

    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    real = world_module._read_directory
    minute = iter(range(10, 60))

    def observer_never_stops(path: Path, progress: Any, view: Any) -> Any:
        document = real(path, progress, view)
        step = next(minute)
        # Sizes differ from write to write: file times are too coarse to tell quick writes apart.
        (path / "world.json").write_text(json.dumps(
            {"observed_at": f"2026-11-26T10:{step}:00Z", "pad": "x" * step}))
        return document

    monkeypatch.setattr(world_module, "_read_directory", observer_never_stops)
    with pytest.raises(InputError, match="changed while the world was read, 3 times"):
        load_world(root / "world")


SINGLE_FILE = """{
  "observed_at": "2026-11-26T10:00:00",
  "services": {
    "n1/steady": {"status": "running", "since": "2026-11-26T09:00:00Z"},
    "n1/other": {"since": "2026-11-26T09:00:00Z"}
  },
  "deployments": [{"id": "d1", "service": "n1/steady", "status": "failed",
                   "started_at": "2026-11-26T09:00:00Z", "extra": 1, "finished_at": 3}]
}
"""


def test_json_problems_have_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text(SINGLE_FILE)
    with pytest.raises(InputError) as caught:
        load_world(tmp_path / "world.json")
    shown = f"{tmp_path}/world.json"
    assert [str(p) for p in caught.value.problems] == [
        (f"{shown}:2:18: observed_at: string \"2026-11-26T10:00:00\" is not an RFC 3339 "
        "timestamp with a zone (like 2026-11-26T10:00:00Z)"),
        (f"{shown}:4:29: services.n1/steady.status: string \"running\" is not one of: ok, "
        "degraded, failed, stopped, starting, unknown"),
        f"{shown}:5:17: services.n1/other: missing required key 'status'",
        f"{shown}:8:85: deployments[0].finished_at: expected string, got integer 3",
    ]


def test_json_records_in_a_directory_have_line_and_column(tmp_path: Path) -> None:
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()})
    (root / "world" / "services" / "n1" / "a.json").write_text(
        '{\n  "status": "ok",\n  "restarts": "6"\n}\n')
    with pytest.raises(InputError) as caught:
        load_world(root / "world")
    assert [str(p) for p in caught.value.problems] == [
        f"{root}/world/services/n1/a.json:3:15: restarts: expected integer, got string \"6\""]


def test_valid_files_compute_no_positions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor import json_positions

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a position was computed for a valid file")

    monkeypatch.setattr(json_positions, "locate", refuse)
    root = write_scenario(tmp_path, {"n1": "services: {}\n"}, services={"n1/a": ok()},
                          deployments=[DEPLOYMENT], incidents=[INCIDENT])
    assert list(load_world(root / "world").services) == ["n1/a"]


def test_records_with_the_same_time_and_id_keep_one_order_whatever_the_listing() -> None:
    """Ties are broken by the whole record, as if every record's text were part of the key."""
    import itertools

    from supervisor.timestamps import parse_time
    from supervisor.world import _chronological

    records = [
        {"id": "d1", "service": "n1/a", "status": status, "started_at": started}
        for status in ("failed", "succeeded", "running")
        for started in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+00:00",
                        "2025-12-31T23:59:59Z")
    ] + [{"id": "d0", "service": "n1/b", "status": "ok", "started_at": "2026-01-01T00:00:00Z"}]
    expected = sorted(records, key=lambda record: (
        parse_time(record["started_at"]), record["id"], json.dumps(record, sort_keys=True)))
    for order in itertools.islice(itertools.permutations(records), 0, 2000, 97):
        assert _chronological(list(order), "started_at") == expected
