"""The inventory's cache by node (parsed.py's shards): a warm load gives what a load without the
cache does, a change rewrites the shard of its node, and the dependency check is skipped only on
the very files it passed on, however a run that wrote the cache was stopped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import ROOT

from supervisor import cache, inventory, loader
from supervisor.errors import InputError
from supervisor.inputs import Inputs
from supervisor.inventory import SHARDS, load_inventory
from supervisor.manifest import Check, reading
from supervisor.model import Inventory


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated lab of 40 nodes (every shard holds some); files written a moment ago count
    as settled (outside tests that takes two seconds)."""
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
    assert set(shards()) == set(range(SHARDS))
    assert set(shards()) == {shard_of(node) for node in expected.nodes}
    no_reading(monkeypatch)
    assert same(load_inventory(root), expected)
    assert same(walked(lab), expected)


def test_a_changed_file_rewrites_the_shard_of_its_node_only(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = lab / "hosts"
    load_inventory(root)
    written = writes(monkeypatch)
    load_inventory(root)
    assert written == []  # nothing changed
    edit(lab, "node0007", "services:\n", "services:\n  added: {}\n")
    found = walked(lab)
    assert same(found, cold(root)) and "node0007/added" in found.services
    assert [name.split("-")[1] for name in written] == [f"{shard_of('node0007'):02d}", "passed"]
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
    written = writes(monkeypatch)
    assert "which no node declares" in problem_of(root) and runs == [1]
    assert f"inventory-{shard_of(needed):02d}-" in " ".join(written)
    assert "which no node declares" in problem_of(root) and runs == [1, 1]


def test_the_shard_file_of_nodes_all_gone_is_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -1)
    root = tmp_path / "hosts"
    for node in ("alpha", "beta"):
        (root / node).mkdir(parents=True)
        (root / node / "services.yaml").write_text("services:\n  web: {}\n")
    assert shard_of("alpha") != shard_of("beta")
    load_inventory(root)
    assert set(shards()) == {shard_of("alpha"), shard_of("beta")}
    shutil.rmtree(root / "beta")
    assert list(load_inventory(root).nodes) == ["alpha"]
    assert set(shards()) == {shard_of("alpha")}


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
