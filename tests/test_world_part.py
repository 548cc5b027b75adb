"""The world with the services of a few nodes only (`load_world_part`): what `load_world` gives,
restricted, from this run's walk, reading only those nodes' directories and cache shards; None
wherever that cannot be vouched for."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from support.reads import records_read, shard_reads
from support.scenarios import ROOT

from supervisor import cache, records, world
from supervisor.inputs import Inputs
from supervisor.manifest import Check, reading
from supervisor.model import World
from supervisor.world import load_world, load_world_part

NOW = "2026-11-26T10:01:00Z"
NODES = [f"node{number:04d}" for number in range(1, 11)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = tmp_path_factory.mktemp("generated") / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes",
                    str(len(NODES)), "--services", "4"], check=True, stdout=subprocess.DEVNULL)
    return lab


@pytest.fixture
def lab(generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the generated lab; files written a moment ago count as settled (outside tests
    that takes two seconds)."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    return Path(shutil.copytree(generated, tmp_path / "lab", symlinks=True))


def walk(lab: Path) -> Check:
    check = Check(Inputs(inventory=lab / "hosts", world=lab / "world", now=NOW))
    check.save()
    return check


def part(lab: Path, nodes: Iterable[str], check: Check | None = None) -> World | None:
    """The part as `run` loads it: after its walk."""
    with reading((check or walk(lab)).for_loaders()):
        return load_world_part(lab / "world", nodes)


def full(lab: Path, check: Check | None = None) -> World:
    with reading((check or walk(lab)).for_loaders()):
        return load_world(lab / "world")


def cold(lab: Path) -> World:
    with cache.bypassed():
        return load_world(lab / "world")


def restricted(found: World, nodes: Iterable[str]) -> World:
    wanted = set(nodes)
    return found._replace(services={key: value for key, value in found.services.items()
                                    if key.partition("/")[0] in wanted})


def same(found: World | None, expected: World) -> bool:
    """Equal, and in the same order (dicts compare equal whatever their order)."""
    return (found is not None and found == expected
            and list(found.services) == list(expected.services)
            and list(found.nodes) == list(expected.nodes))


def shard_of(relative: str) -> str:
    return f"world-{records._shard(relative):02d}-"


def rewrite(record: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """An observer's atomic rewrite of one record."""
    data = json.loads(record.read_text())
    change(data)
    temporary = record.with_name(f".{record.name}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, record)


def edit(lab: Path, rng: random.Random) -> None:
    """One record of any kind changed, as an observer changes them."""
    base = lab / "world"
    kind = rng.choice(["services", "services", "nodes", "deployments", "incidents"])
    pattern = "*/*.json" if kind == "services" else "*.json"
    record = rng.choice(sorted((base / kind).glob(pattern)))

    def change(data: dict[str, Any]) -> None:
        if kind == "services" or kind == "nodes":
            data["note"] = f"edit {rng.random()}"
            if kind == "services":
                data["status"] = rng.choice(["ok", "failed", "degraded"])
        elif kind == "deployments":
            data["started_at"] = f"2026-11-26T0{rng.randrange(10)}:00:00Z"
        else:
            data["opened_at"] = f"2026-11-26T0{rng.randrange(10)}:30:00Z"

    rewrite(record, change)


@pytest.mark.parametrize("seed", range(6))
def test_a_part_is_the_whole_world_restricted_to_its_nodes(
        seed: int, lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    full(lab)  # the cache as the last run left it
    for _ in range(4):
        for _ in range(rng.randrange(1, 4)):
            edit(lab, rng)
        nodes = rng.sample(NODES, rng.randrange(0, 4)) + rng.sample(["node0099", "gone"], 1)
        expected = restricted(cold(lab), nodes)
        assert same(part(lab, nodes), expected)
        assert same(part(lab, nodes), expected)  # from what it kept
        with cache.bypassed():
            assert same(part(lab, nodes), expected)
    assert same(full(lab), cold(lab))


def test_a_part_reads_only_its_nodes_directories_and_shards(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full(lab)
    changed = lab / "world" / "services" / "node0003" / "svc0002.json"
    rewrite(changed, lambda data: data.update(status="failed"))
    nodes = ["node0003", "node0007"]
    expected = restricted(cold(lab), nodes)
    check = walk(lab)
    shards, read = shard_reads(monkeypatch), records_read(monkeypatch)
    assert same(part(lab, nodes, check), expected)
    assert read == [str(changed)]  # the changed record, the rest from the cache
    needed = {shard_of(relative) for relative in (
        "", "/nodes", "/deployments", "/incidents", "/services/node0003",
        "/services/node0007")}
    assert len(shards) == len(needed)
    assert {name[:len("world-00-")] for name in shards} == needed
    # The other shards are not needed: without them, the same part.
    folder = Path(os.environ["SUPERVISOR_CACHE_DIR"])
    for path in folder.glob("world-*.json"):
        if path.name[:len("world-00-")] not in needed:
            path.unlink()
    assert same(part(lab, nodes), expected)


def test_a_part_without_the_cache_reads_only_its_nodes_records(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = restricted(cold(lab), ["node0002"])
    check = walk(lab)
    read = records_read(monkeypatch)
    with cache.bypassed():
        assert same(part(lab, ["node0002"], check), expected)
    services = [path for path in read if "/services/" in path]
    assert services and all("/services/node0002/" in path for path in services)


def test_after_a_part_a_whole_load_takes_the_other_directories_from_the_cache(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full(lab)
    changed = lab / "world" / "services" / "node0005" / "svc0001.json"
    rewrite(changed, lambda data: data.update(status="failed"))
    assert part(lab, ["node0005"]) is not None
    expected = cold(lab)
    read = records_read(monkeypatch)
    assert same(full(lab), expected)
    assert read == []  # all of it kept, the part's directory and those it did not visit


def test_a_part_from_a_cold_cache_then_a_whole_load(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert same(part(lab, ["node0001", "node0004"]),
                restricted(cold(lab), ["node0001", "node0004"]))
    assert same(full(lab), cold(lab))
    assert same(full(lab), cold(lab))


def test_no_part_without_a_walk_of_the_world(lab: Path) -> None:
    assert load_world_part(lab / "world", ["node0001"]) is None
    check = Check(Inputs(inventory=lab / "hosts", world=lab / "world", now=NOW))
    # The walk could not list a directory of the world.
    check._listing.unlisted.append(str(lab / "world" / "services" / "node0009"))
    assert part(lab, ["node0001"], check) is None


def test_no_part_of_a_world_that_is_no_directory(lab: Path, tmp_path: Path) -> None:
    single = tmp_path / "single"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(single),
                    "--nodes", "2", "--services", "2", "--single-file"], check=True,
                   stdout=subprocess.DEVNULL)
    world_file = next(path for path in single.iterdir() if path.suffix == ".json")
    check = Check(Inputs(inventory=single / "hosts", world=world_file, now=NOW))
    with reading(check.for_loaders()):
        assert load_world_part(world_file, ["node0001"]) is None
        assert load_world_part(tmp_path / "nowhere", ["node0001"]) is None


def test_no_part_when_world_json_changed_since_the_walk(lab: Path) -> None:
    check = walk(lab)
    rewrite(lab / "world" / "world.json", lambda data: data.update(observed_at=NOW))
    assert part(lab, ["node0001"], check) is None


def test_no_part_when_world_json_changes_during_the_read(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = world._read_part

    def observer_writes_meanwhile(*args: Any) -> Any:
        found = real(*args)
        rewrite(lab / "world" / "world.json", lambda data: data.update(pad="x" * 40))
        return found

    check = walk(lab)
    monkeypatch.setattr(world, "_read_part", observer_writes_meanwhile)
    assert part(lab, ["node0001"], check) is None


def test_no_part_without_world_json(lab: Path) -> None:
    (lab / "world" / "world.json").unlink()
    assert part(lab, ["node0001"]) is None


def broken(path: Path) -> None:
    path.write_text("{not json")


PROBLEMS: dict[str, Callable[[Path], None]] = {
    "a broken record of a node asked for": lambda world_dir: broken(
        world_dir / "services" / "node0001" / "svc0001.json"),
    "a record not matching its schema": lambda world_dir: (
        world_dir / "services" / "node0001" / "svc0002.json").write_text('{"status": 7}'),
    "a bad service name": lambda world_dir: (
        world_dir / "services" / "node0001" / "svc0001.json").rename(
        world_dir / "services" / "node0001" / "Bad Name.json"),
    "a broken node record": lambda world_dir: broken(world_dir / "nodes" / "node0005.json"),
    "a broken deployment": lambda world_dir: broken(
        min((world_dir / "deployments").glob("*.json"))),
    "a broken incident": lambda world_dir: broken(min((world_dir / "incidents").glob("*.json"))),
    "a broken world.json": lambda world_dir: broken(world_dir / "world.json"),
    "a link in a node asked for": lambda world_dir: (
        world_dir / "services" / "node0001" / "linked.json").symlink_to(
        world_dir / "services" / "node0002" / "svc0001.json"),
    "a link in a node not asked for": lambda world_dir: (
        world_dir / "services" / "node0008" / "linked.json").symlink_to(
        world_dir / "services" / "node0002" / "svc0001.json"),
    "a directory named as a record, not asked for": lambda world_dir: (
        world_dir / "services" / "node0008" / "sub.json").mkdir(),
    "a linked node directory": lambda world_dir: (world_dir / "services" / "node0042"
                                                  ).symlink_to(world_dir / "nodes"),
    "a bad node directory name": lambda world_dir: (
        world_dir / "services" / "Bad Node").mkdir(),
    "a linked services directory": lambda world_dir: (
        (world_dir / "services").rename(world_dir.parent / "services"),
        (world_dir / "services").symlink_to(world_dir.parent / "services")),
}


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_no_part_where_a_whole_load_finds_a_problem(
        problem: str, lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full(lab)
    PROBLEMS[problem](lab / "world")
    with pytest.raises(world.InputError):
        cold(lab)
    assert part(lab, ["node0001"]) is None
    with cache.bypassed():
        assert part(lab, ["node0001"]) is None


@pytest.mark.parametrize("node", ["node0001", "node0010"], ids=["first", "last"])
@pytest.mark.parametrize("limit", ["SUPERVISOR_MAX_NODES", "SUPERVISOR_MAX_SERVICES"])
def test_no_part_beyond_a_limit(limit: str, node: str, lab: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    full(lab)
    check = walk(lab)
    monkeypatch.setenv(limit, str(len(NODES) - 1 if limit.endswith("NODES") else 39))
    with pytest.raises(world.InputError, match="holds more than"):
        cold(lab)
    assert part(lab, [node], check) is None


def test_a_part_waits_for_the_observer_like_a_whole_load(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = lab / "world" / world.LOCK_FILE
    lock.touch()
    check = walk(lab)
    monkeypatch.setattr(world, "LOCK_WAIT_SECONDS", 0.05)
    descriptor = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)  # an observer writing, and stuck
        with pytest.raises(world.InputError, match="an observer has been writing"):
            full(lab, check)
        assert part(lab, ["node0001"], check) is None
    finally:
        os.close(descriptor)
    assert same(part(lab, ["node0001"], check), restricted(cold(lab), ["node0001"]))
