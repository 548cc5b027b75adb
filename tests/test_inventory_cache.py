"""The inventory's cache by node (parsed.py's shards): a warm load gives what a load without the
cache does, a change rewrites the shard of its node, and the dependency check is skipped only on
the very files it passed on, however a run that wrote the cache was stopped."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import ROOT

from supervisor import cache, inventory, loader, parsed
from supervisor.errors import InputError
from supervisor.inputs import Inputs
from supervisor.inventory import SHARDS, inventory_part, load_inventory
from supervisor.limits import current
from supervisor.manifest import Check, reading
from supervisor.model import Inventory


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated lab of 40 nodes (in 40 shards); files written a moment ago count as settled
    (outside tests that takes two seconds)."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab = tmp_path / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes",
                    "40", "--services", "4"], check=True, stdout=subprocess.DEVNULL)
    return lab


def cold(root: Path) -> Inventory:
    with cache.bypassed():
        return load_inventory(root)


def walked(lab: Path) -> Inventory:
    """The inventory as `run` loads it: after the walk, with its stamps."""
    check = Check(Inputs(inventory=lab / "hosts", world=lab / "world"))
    with reading(check.for_loaders()):
        return load_inventory(lab / "hosts")


def same(found: Inventory, expected: Inventory) -> bool:
    """The same nodes and services, in the same order."""
    return (list(found.nodes.items()) == list(expected.nodes.items())
            and list(found.services.items()) == list(expected.services.items()))


def shard_of(node: str) -> int:
    return zlib.crc32(node.encode()) % SHARDS


def shards() -> dict[int, Path]:
    folder = Path(os.environ["SUPERVISOR_CACHE_DIR"])
    return {int(path.name.split("-")[1]): path for path in folder.glob("inventory-[0-9]*.json")}


def no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(f"read {args[0]} although the cache holds it")

    monkeypatch.setattr(loader, "read_text", refuse)


def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the cache files written from now on."""
    written: list[str] = []
    real = cache.write

    def spy(path: Path | None, *args: Any) -> None:
        written.append(path.name if path else "")
        real(path, *args)

    monkeypatch.setattr(cache, "write", spy)
    return written


def checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per run of the dependency check from now on."""
    runs: list[int] = []
    real = inventory._check_dependencies
    monkeypatch.setattr(inventory, "_check_dependencies",
                        lambda *args: runs.append(1) or real(*args))
    return runs


def edit(lab: Path, node: str, old: str, new: str) -> None:
    path = lab / "hosts" / node / "services.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


BROKEN = ("services:\n", "services:\n  orphan:\n    depends_on: [nowhere]\n")


def problem_of(root: Path) -> str:
    with pytest.raises(InputError) as caught:
        load_inventory(root)
    return str(caught.value)


def test_a_warm_load_by_node_gives_what_a_load_without_the_cache_does(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    expected = cold(root)
    assert shards() == {}
    assert same(load_inventory(root), expected)  # fills the cache
    assert set(shards()) == {shard_of(node) for node in expected.nodes}
    assert len(shards()) == 40
    no_reading(monkeypatch)
    assert same(load_inventory(root), expected)
    assert same(walked(lab), expected)


def test_a_changed_file_rewrites_the_shard_of_its_node_only(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    load_inventory(root)
    written = writes(monkeypatch)
    removed: list[Path | None] = []
    monkeypatch.setattr(cache, "remove", removed.append)
    load_inventory(root)
    assert written == [] and removed == []  # nothing changed, nothing to remove
    edit(lab, "node0007", "services:\n", "services:\n  added: {}\n")
    found = walked(lab)
    assert same(found, cold(root)) and "node0007/added" in found.services
    assert [name.split("-")[1] for name in written] == [f"{shard_of('node0007'):02d}", "index"]
    written.clear()
    assert same(walked(lab), found) and written == []


def test_a_removed_node_rewrites_its_shard_and_the_check_runs_again(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    expected = load_inventory(root)
    runs = checks(monkeypatch)
    assert same(load_inventory(root), expected) and runs == []  # the same files: skipped
    # A node others depend on goes: its dependents' files, unchanged, are now wrong.
    needed = next(dependency.split("/")[0] for service in expected.services.values()
                  for dependency in service.depends_on if dependency.split("/")[0] != service.node)
    shutil.rmtree(root / needed)
    assert "which no node declares" in problem_of(root) and runs == [1]
    assert "which no node declares" in problem_of(root) and runs == [1, 1]


def kept_nodes(path: Path) -> list[str]:
    entries = cache.read(path, cache.identity(current()))
    assert entries is not None
    return sorted(Path(file).parent.name for file in entries["files"])


@pytest.mark.parametrize("index", ["kept", "lost"])
def test_a_shard_that_lost_nodes_is_rewritten_and_one_that_lost_all_removed(
        index: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -1)
    root = tmp_path / "hosts"
    for node in ("alpha", "beta", "gamma62"):
        (root / node).mkdir(parents=True)
        (root / node / "services.yaml").write_text("services:\n  web: {}\n")
    assert shard_of("alpha") == shard_of("gamma62") != shard_of("beta")
    load_inventory(root)
    assert set(shards()) == {shard_of("alpha"), shard_of("beta")}
    assert kept_nodes(shards()[shard_of("alpha")]) == ["alpha", "gamma62"]
    if index == "lost":  # which shards hold entries is not known: all may
        (only,) = Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("inventory-index-*.json")
        only.unlink()
    shutil.rmtree(root / "beta")
    shutil.rmtree(root / "gamma62")
    assert list(load_inventory(root).nodes) == ["alpha"]
    assert set(shards()) == {shard_of("alpha")}
    assert kept_nodes(shards()[shard_of("alpha")]) == ["alpha"]


def test_a_failed_check_is_run_again_on_the_same_files(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    load_inventory(root)  # the check passes: its mark is kept
    runs = checks(monkeypatch)
    edit(lab, "node0003", *BROKEN)  # still valid on its own: its value is cached
    for _ in range(3):
        assert "depends on node0003/nowhere" in problem_of(root)
    assert runs == [1, 1, 1]


@pytest.mark.parametrize("kept", [0, 1, 2])
def test_a_run_stopped_between_two_cache_files_leaves_no_mark_for_other_files(
        kept: int, lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two nodes in different shards change; the run is killed after `kept` of its cache
    files were written, in one order or the other. Whatever it left, the next runs check the
    dependencies again and find the one that is wrong."""
    root = lab / "hosts"
    broken, other = "node0003", next(f"node{n:04d}" for n in range(4, 40)
                                     if shard_of(f"node{n:04d}") != shard_of("node0003"))
    load_inventory(root)
    runs = checks(monkeypatch)
    edit(lab, other, "services:\n", "services:\n  added: {}\n")
    load_inventory(root)  # passes, on other files: a new mark
    assert runs == [1]
    before = {path.name: path.read_bytes() for path in shards().values()}
    edit(lab, broken, *BROKEN)
    edit(lab, other, "  added: {}\n", "  added: {}\n  more: {}\n")
    assert "depends on node0003/nowhere" in problem_of(root)
    after = {path.name: path.read_bytes() for path in shards().values()}
    changed = sorted(name for name in after if after[name] != before.get(name))
    assert len(changed) == 2
    for order in (changed, changed[::-1]):
        # As if the run had written only the first `kept` of them, in this order.
        for name in order[kept:]:
            (Path(os.environ["SUPERVISOR_CACHE_DIR"]) / name).write_bytes(before[name])
        runs.clear()
        assert "depends on node0003/nowhere" in problem_of(root)
        assert "depends on node0003/nowhere" in problem_of(root)
        assert runs == [1, 1]


# `inventory_part`: a few nodes from the cache, for a run that walked its inputs.


def checked(lab: Path, root: Path | None = None) -> Check:
    check = Check(Inputs(inventory=root or lab / "hosts", world=lab / "world"))
    check.save()
    return check


def part(lab: Path, nodes: list[str], check: Check | None = None,
         root: Path | None = None) -> Inventory | None:
    root = root or lab / "hosts"
    with reading((check or checked(lab, root)).for_loaders()):
        return inventory_part(root, nodes)


def restricted(whole: Inventory, nodes: list[str]) -> Inventory:
    """What `load_inventory` gave for `nodes`, in its order."""
    found = Inventory()
    found.nodes = {name: node for name, node in whole.nodes.items() if name in nodes}
    found.services = {key: service for key, service in whole.services.items()
                      if service.node in nodes}
    return found


def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the inventory's cache files read from now on."""
    read: list[str] = []
    real = cache.read

    def spy(path: Path | None, *args: Any) -> Any:
        if path is not None and path.name.startswith("inventory-"):
            read.append(path.name)
        return real(path, *args)

    monkeypatch.setattr(cache, "read", spy)
    return read


ODD = ["", ".", "..", ".hidden", "node0001/sub", "/etc", "Node0001", "node9999", "stray.txt"]


def odd_entries(root: Path) -> None:
    """What a whole load passes over: a hidden node, a plain file, a subdirectory of a node."""
    for folder in (root / ".hidden", root / "node0001" / "sub"):
        folder.mkdir()
        shutil.copy(root / "node0002" / "services.yaml", folder / "services.yaml")
    (root / "stray.txt").write_text("not a node\n")


def test_a_part_is_the_whole_load_restricted_to_its_nodes(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    odd_entries(root)
    whole = walked(lab)
    assert same(whole, cold(root))
    no_reading(monkeypatch)
    check = checked(lab)
    names = list(whole.nodes)
    chooser = random.Random(16)
    for size in [0, 1, 2, 3, 5, 8, 13, 40, *range(1, 12)]:
        nodes = chooser.sample(names + ODD, size) + chooser.sample(names, min(size, 2))
        found = part(lab, nodes, check)
        assert found is not None, nodes
        assert same(found, restricted(whole, nodes)), nodes
    assert part(lab, ODD, check) is not None


def test_a_part_reads_the_shards_of_its_nodes_only_and_writes_nothing(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = walked(lab)
    check = checked(lab)
    read, written = reads(monkeypatch), writes(monkeypatch)
    removed: list[Path | None] = []
    monkeypatch.setattr(cache, "remove", removed.append)
    no_reading(monkeypatch)
    for nodes in (["node0005"], ["node0001", "node0017", "node0033", "node9999"], []):
        read.clear()
        found = part(lab, nodes, check)
        assert found is not None and same(found, restricted(whole, nodes))
        assert sorted(name[:len("inventory-00")] for name in read) == sorted(
            {f"inventory-{shard_of(node):02d}" for node in nodes if node in whole.nodes})
    assert written == [] and removed == []
    # The other shards are not needed at all.
    keep = {shard_of("node0005")}
    for shard, path in shards().items():
        if shard not in keep:
            path.unlink()
    found = part(lab, ["node0005"], check)
    assert found is not None and same(found, restricted(whole, ["node0005"]))


def test_a_part_of_a_file_changed_since_it_was_kept_is_none(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    edit(lab, "node0007", "services:\n", "services:\n  added: {}\n")
    assert part(lab, ["node0007"]) is None
    assert part(lab, ["node0003", "node0007", "node0011"]) is None
    assert part(lab, ["node0003", "node0011"]) is not None
    walked(lab)  # a whole load keeps it again
    found = part(lab, ["node0007"])
    assert found is not None and "node0007/added" in found.services


def test_a_part_of_a_node_added_since_the_cache_was_written_is_none(lab: Path) -> None:
    walked(lab)
    shutil.copytree(lab / "hosts" / "node0002", lab / "hosts" / "node0041")
    assert part(lab, ["node0041"]) is None
    assert part(lab, ["node0002"]) is not None


@pytest.mark.parametrize("nodes", [["node0001"], [], ["node9999"]])
def test_a_part_without_a_walk_or_a_cache_is_none(
        nodes: list[str], lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    check = checked(lab)
    assert part(lab, nodes, check) is not None
    assert inventory_part(lab / "hosts", nodes) is None  # no walk
    with cache.bypassed():
        assert part(lab, nodes, check) is None
    monkeypatch.setenv("SUPERVISOR_CACHE", "off")
    assert part(lab, nodes, check) is None


def test_a_part_of_a_root_the_walk_did_not_list_as_a_directory_is_none(
        lab: Path, tmp_path: Path) -> None:
    walked(lab)
    assert part(lab, [], checked(lab), root=tmp_path / "elsewhere") is None
    file_root = tmp_path / "hosts-file"
    file_root.write_text("services: {}\n")
    assert part(lab, ["node0001"], root=file_root) is None


def test_a_part_of_a_node_whose_entry_a_whole_load_refuses_is_none(lab: Path) -> None:
    root = lab / "hosts"
    walked(lab)
    (root / "linked").symlink_to(root / "node0001")  # a node that is a link
    assert part(lab, ["linked"]) is None
    (root / "linked").unlink()
    # A file that became a link (to itself, moved): a whole load refuses it.
    services = root / "node0002" / "services.yaml"
    services.rename(root / "node0002" / "moved.yaml")
    services.symlink_to(root / "node0002" / "moved.yaml")
    assert part(lab, ["node0002"]) is None
    services.unlink()
    assert part(lab, ["node0002"]) is None  # no file at all
    (root / "node0002" / "moved.yaml").rename(services)
    walked(lab)
    assert part(lab, ["node0002"]) is not None


def test_a_part_of_a_node_the_walk_could_not_list_is_none(lab: Path) -> None:
    walked(lab)
    check = checked(lab)
    folder = str(lab / "hosts" / "node0004")
    listing = check.for_loaders().listing
    assert listing is not None
    listing.directories = [directory for directory in listing.directories
                           if listing.roots[directory.root] + directory.relative != folder]
    listing.unlisted.append(folder)
    assert part(lab, ["node0004"], check) is None
    assert part(lab, ["node0005"], check) is not None


def test_a_part_of_a_value_edited_in_the_cache_is_none(lab: Path) -> None:
    walked(lab)
    path = shards()[shard_of("node0006")]
    entries = cache.read(path, cache.identity(current()))
    assert entries is not None
    entries["files"][str(lab / "hosts" / "node0006" / "services.yaml")][5] = {"node": {}}
    cache.write(path, cache.identity(current()), entries)
    assert part(lab, ["node0006"]) is None


def test_a_part_imports_neither_yaml_nor_the_validator(lab: Path) -> None:
    # Both loads in processes of their own: the package they import (from an install, or the
    # checkout in the working directory) names the cache this test's process would not share.
    code = (
        "import sys\nfrom pathlib import Path\nfrom supervisor import cache\n"
        "cache.RACY_NS = -1\n"
        "from supervisor.inputs import Inputs\n"
        "from supervisor.inventory import inventory_part, load_inventory\n"
        "from supervisor.manifest import Check, reading\n"
        "lab = Path(sys.argv[1])\n"
        "check = Check(Inputs(inventory=lab / 'hosts', world=lab / 'world'))\n"
        "with reading(check.for_loaders()):\n"
        "    if sys.argv[2] == 'whole':\n"
        "        load_inventory(lab / 'hosts')\n"
        "    else:\n"
        "        found = inventory_part(lab / 'hosts', ['node0001', 'node0002'])\n"
        "        assert found is not None and list(found.nodes) == ['node0001', 'node0002']\n"
        "print([m for m in ('yaml', 'jsonschema', 'jsonschema_rs') if m in sys.modules])\n")
    whole = subprocess.run([sys.executable, "-c", code, str(lab), "whole"], capture_output=True,
                           text=True, check=True)
    assert "yaml" in whole.stdout  # the cold load parses
    part = subprocess.run([sys.executable, "-c", code, str(lab), "part"], capture_output=True,
                          text=True, check=True)
    assert part.stdout.strip() == "[]"


def test_a_file_read_again_under_the_same_stamp_is_checked_again(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file rewritten within the clock's grain can keep its stamp: its entry is not trusted
    and it is read again, and what it now holds was never checked with the others."""
    root = lab / "hosts"
    path = root / "node0003" / "services.yaml"
    walked(lab)  # the check passes: its mark names these stamps
    stamp = cache.stamp_from(path.stat())
    edit(lab, "node0003", *BROKEN)
    # As a file system with a coarse clock would show it: the same stamp, and too recent to
    # vouch for the entry kept under it.
    monkeypatch.setattr(parsed, "known_stamp", lambda seen: stamp if seen == str(path)
                        else cache.stamp_from(os.stat(seen)))
    monkeypatch.setattr(cache, "trusted", lambda found, taken: found != stamp)
    runs = checks(monkeypatch)
    assert "depends on node0003/nowhere" in problem_of(root)
    assert runs == [1]
