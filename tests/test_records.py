"""The world's records kept per directory (records.py): a run takes unchanged directories whole
from the cache, with the walk's listings, and loads exactly what a load without the cache does."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.reads import records_read, shard_reads
from support.scenarios import FIXTURES, ROOT
from typer.testing import CliRunner

from supervisor import cache, records
from supervisor.cli import app
from supervisor.errors import InputError
from supervisor.inputs import Inputs
from supervisor.manifest import Check, reading
from supervisor.model import World
from supervisor.world import load_world

NOW = "2026-11-26T10:01:00Z"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated lab (services, deployments, incidents); files written a moment ago count
    as settled (outside tests that takes two seconds)."""
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab = tmp_path / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes",
                    "6", "--services", "5"], check=True, stdout=subprocess.DEVNULL)
    return lab


def inputs(lab: Path) -> Inputs:
    return Inputs(inventory=lab / "hosts", world=lab / "world", now=NOW)


def walked(lab: Path, check: Check | None = None) -> World | str:
    """The world as `run` loads it: after the walk, from its listings."""
    if check is None:
        check = Check(inputs(lab))
        check.save()
    with reading(check.for_loaders()):
        return _loaded(lab)


def fresh(lab: Path) -> World | str:
    """The world as `eval` loads it: listed afresh."""
    return _loaded(lab)


def cold(lab: Path, monkeypatch: pytest.MonkeyPatch) -> World | str:
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        return _loaded(lab)


def _loaded(lab: Path) -> World | str:
    try:
        return load_world(lab / "world")
    except InputError as error:
        return str(error)


def in_time_order(found: World | str) -> bool:
    """Deployments and incidents by time, then id (the generated ones have no ties)."""
    if isinstance(found, str):
        return True
    return (found.deployments == sorted(found.deployments,
                                        key=lambda record: (record["started_at"], record["id"]))
            and found.incidents == sorted(found.incidents,
                                          key=lambda record: (record["opened_at"], record["id"])))


def services(lab: Path) -> list[Path]:
    return sorted((lab / "world" / "services").glob("*/*.json"))


def flip(record: Path) -> None:
    """An observer's atomic rewrite of one record."""
    text = record.read_text()
    status = json.loads(text)["status"]
    changed = text.replace(f'"{status}"', '"failed"' if status != "failed" else '"ok"')
    temporary = record.with_name(f".{record.name}.tmp")
    temporary.write_text(changed)
    os.replace(temporary, record)


def in_place(record: Path) -> None:
    """A rewrite keeping inode, size and mtime: only the ctime moves."""
    before = record.stat()
    text = record.read_text()
    data = json.loads(text)
    data["status"] = "failed" if data["status"] != "failed" else "gone"
    changed = json.dumps(data)
    with open(record, "r+") as handle:
        handle.write(changed)
        handle.truncate()
    os.utime(record, ns=(before.st_atime_ns, before.st_mtime_ns))


def add_service(lab: Path) -> None:
    node = services(lab)[0].parent
    (node / "zz-new.json").write_text(json.dumps({"status": "ok"}))


def remove_service(lab: Path) -> None:
    services(lab)[-1].unlink()


def add_node_directory(lab: Path) -> None:
    (lab / "world" / "services" / "node0099").mkdir()
    (lab / "world" / "services" / "node0099" / "svc.json").write_text('{"status": "ok"}')


def remove_node_directory(lab: Path) -> None:
    shutil.rmtree(services(lab)[0].parent)


def swap_node_directories(lab: Path) -> None:
    first, second = sorted((lab / "world" / "services").iterdir())[:2]
    first.rename(first.with_name("swapping"))
    second.rename(first)
    first.with_name("swapping").rename(second)


def add_deployment(lab: Path) -> None:
    (lab / "world" / "deployments" / "zz.json").write_text(json.dumps({
        "id": "zz", "service": "node0001/svc0001", "status": "failed",
        "started_at": "2026-11-26T09:00:00Z", "finished_at": "2026-11-26T09:01:00Z"}))


def add_deployment_out_of_name_order(lab: Path) -> None:
    """Listed first, started last: kept in time order, not in the directory's."""
    (lab / "world" / "deployments" / "000.json").write_text(json.dumps({
        "id": "000", "service": "node0001/svc0001", "status": "succeeded",
        "started_at": "2026-11-26T09:59:00Z", "finished_at": "2026-11-26T09:59:30Z"}))


def hidden_temporary(lab: Path) -> None:
    (services(lab)[0].parent / ".svc.json.tmp").write_text("{half a record")


def a_directory_named_as_a_record(lab: Path) -> None:
    (services(lab)[0].parent / "dir.json").mkdir()


def a_link(lab: Path) -> None:
    (services(lab)[0].parent / "linked.json").symlink_to(services(lab)[1])


def a_broken_record(lab: Path) -> None:
    services(lab)[0].write_text("{not json")


def a_bad_name(lab: Path) -> None:
    services(lab)[0].rename(services(lab)[0].with_name("Bad Name.json"))


CHANGES: dict[str, Callable[[Path], None]] = {
    "atomic rewrite": lambda lab: flip(services(lab)[3]),
    "rewrite in place": lambda lab: in_place(services(lab)[3]),
    "service added": add_service,
    "service removed": remove_service,
    "node directory added": add_node_directory,
    "node directory removed": remove_node_directory,
    "node directories swapped": swap_node_directories,
    "deployment added": add_deployment,
    "deployment added out of name order": add_deployment_out_of_name_order,
    "world.json rewritten": lambda lab: (lab / "world" / "world.json").write_text(json.dumps(
        {"observed_at": "2026-11-26T10:00:30Z", "observer": {"name": "other"}})),
    "hidden temporary": hidden_temporary,
    "directory named as a record": a_directory_named_as_a_record,
    "link": a_link,
    "broken record": a_broken_record,
    "bad name": a_bad_name,
}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("load", [walked, fresh], ids=["walked", "listed"])
def test_a_change_loads_what_a_load_without_the_cache_does(
        change: str, load: Callable[[Path], World | str], lab: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    unchanged = cold(lab, monkeypatch)
    assert load(lab) == unchanged  # fills the cache
    read = records_read(monkeypatch)
    assert load(lab) == unchanged and read == []  # all of it from the cache
    CHANGES[change](lab)
    expected = cold(lab, monkeypatch)
    assert in_time_order(expected)
    assert load(lab) == expected
    assert load(lab) == expected  # and again, from what that run kept


def test_only_the_changed_file_is_read_and_only_its_shard_rewritten(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    shards = sorted(Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("world-*.json"))
    assert len(shards) > 2
    before = {path: path.stat().st_ino for path in shards}
    flip(services(lab)[3])
    expected = cold(lab, monkeypatch)
    read = records_read(monkeypatch)
    assert walked(lab) == expected
    assert read == [str(services(lab)[3])]
    rewritten = [path for path in shards if path.stat().st_ino != before[path]]
    assert len(rewritten) == 1


def test_a_run_and_eval_give_the_same_bytes_with_the_cache_and_without(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def both() -> tuple[str, str]:
        state = lab.parent / "state"
        shutil.rmtree(state, ignore_errors=True)
        state.mkdir()
        run = CliRunner().invoke(app, [
            "run", str(lab), "--once", "--now", NOW, "--events", str(state / "events.log"),
            "--checkpoint", str(state / "checkpoint.json")])
        evaluation = CliRunner().invoke(app, ["eval", str(lab), "--format", "json",
                                              "--now", NOW])
        # Each run has an id of its own; all else is the same.
        events = run.output + (state / "events.log").read_text()
        return re.sub(r"run[ _\"id:]+[0-9a-f]{12}", "run", events), evaluation.output

    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        expected = both()
    assert both() == expected
    assert both() == expected  # warm
    flip(services(lab)[2])
    add_service(lab)
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        expected = both()
    assert both() == expected


def test_a_directory_is_not_taken_whole_within_the_racy_window(lab: Path) -> None:
    walked(lab)
    check = Check(inputs(lab))
    view = records.walk_view(str(lab / "world"))
    assert view is None  # outside a run's reading
    with reading(check.for_loaders()):
        view = records.walk_view(str(lab / "world"))
    assert view is not None
    relative = "/" + str(services(lab)[0].parent.relative_to(lab / "world"))
    scan = view.scans[relative]
    kept = records.Kept(str(lab / "world"), cache.now_ns())
    assert kept.whole(relative, scan) is not None
    # Kept no later than the newest file changed (plus the racy window): not vouched for.
    cache.RACY_NS = 2_000_000_000  # the fixture's monkeypatch restores it
    assert kept.whole(relative, scan) is None


def test_a_file_taken_in_since_the_walk_is_not_taken_from_it(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    check = Check(inputs(lab), complete=True)
    record = services(lab)[3]
    in_place(record)
    assert check.update({os.path.realpath(record)})
    assert walked(lab, check) == cold(lab, monkeypatch)


def test_a_snapshot_written_since_the_walk_is_not_taken_from_it(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    check = Check(inputs(lab))
    assert not check.reading.read  # nothing new to it: the loader's reads will be its own
    # An observer publishes a new snapshot between the walk and the load: it rewrites a record
    # in place and world.json last.
    in_place(services(lab)[3])
    (lab / "world" / "world.json").write_text(json.dumps(
        {"observed_at": "2026-11-26T10:00:30Z", "observer": {"name": "later"}}))
    assert walked(lab, check) == cold(lab, monkeypatch)


def test_a_directory_the_walk_could_not_list_is_listed_again(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    node = services(lab)[0].parent
    check = Check(inputs(lab))
    # As if the walk could not open the node's new subdirectory (unreadable, or gone).
    (node / "dir.json").mkdir()
    check._listing.unlisted.append(str(node / "dir.json"))
    with reading(check.for_loaders()):
        assert records.walk_view(str(lab / "world")) is None
    assert "is a directory, not a record" in str(walked(lab, check))


def test_a_bad_directory_entry_in_the_cache_is_ignored(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    expected = cold(lab, monkeypatch)
    for path in Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("world-*.json"):
        meta = json.loads(path.read_bytes().partition(b"\n")[0])
        entries = cache.read(path, meta["identity"])
        assert entries is not None
        for relative, entry in entries["directories"].items():
            entries["directories"][relative] = (
                [entry[0], entry[1], entry[2], "not base64 !", entry[4]]
                if len(relative) % 2 else entry[:4])
        cache.write(path, meta["identity"], entries)
    assert walked(lab) == expected
    assert fresh(lab) == expected


def test_the_homelab_fixture_loads_the_same(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "RACY_NS", -1)
    lab = tmp_path / "homelab"
    shutil.copytree(FIXTURES / "homelab", lab)
    expected = cold(lab, monkeypatch)
    assert walked(lab) == expected and fresh(lab) == expected
    read = records_read(monkeypatch)
    assert walked(lab) == expected and fresh(lab) == expected and read == []


def test_a_directory_with_a_link_is_listed_again(lab: Path) -> None:
    walked(lab)
    check = Check(inputs(lab))
    node = "/" + str(services(lab)[0].parent.relative_to(lab / "world"))
    with reading(check.for_loaders()):
        view = records.walk_view(str(lab / "world"))
        assert view is not None and node in view.scans
        # The walk follows links (rule files may be links) and flags them: such a directory
        # holds a problem only listing it again reports.
        directory = next(found for found in check._listing.directories
                         if found.relative == node)
        check._listing.links.append(directory.first)
        view = records.walk_view(str(lab / "world"))
        assert view is not None and node not in view.scans


def test_a_directory_holding_other_names_is_not_taken_whole(lab: Path) -> None:
    walked(lab)
    check = Check(inputs(lab))
    node = "/" + str(services(lab)[0].parent.relative_to(lab / "world"))
    with reading(check.for_loaders()):
        view = records.walk_view(str(lab / "world"))
    assert view is not None
    scan = view.scans[node]
    kept = records.Kept(str(lab / "world"), cache.now_ns())
    assert kept.whole(node, scan) is not None
    renamed = records.Scan(["other.json", *scan.names[1:]], scan.numbers, True)
    assert kept.whole(node, renamed) is None


@pytest.mark.parametrize("where", ["new snapshot", "directory listed again"])
def test_bytes_read_before_a_file_changed_again_are_not_kept_under_its_new_stamp(
        where: str, lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = services(lab)[3]
    if where == "directory listed again":
        (record.parent / ".observer-tmp").mkdir()  # the walk's view leaves it out
    walked(lab)
    flip(record)
    check = Check(inputs(lab))
    assert str(record) in check.reading.read  # read (and hashed) by the digest check
    in_place(record)  # and changed again before the load
    if where == "new snapshot":
        (lab / "world" / "world.json").write_text(json.dumps(
            {"observed_at": "2026-11-26T10:00:30Z", "observer": {"name": "later"}}))
    expected = cold(lab, monkeypatch)
    assert walked(lab, check) == expected
    # What the run kept vouches for its files no later than its walk began.
    relative = "/" + str(record.parent.relative_to(lab / "world"))
    kept = [entries["directories"][relative] for entries in map(shard, Path(
        os.environ["SUPERVISOR_CACHE_DIR"]).glob("world-*.json"))
        if relative in entries["directories"]]
    assert len(kept) == 1 and kept[0][0] <= check.taken
    assert walked(lab) == expected and fresh(lab) == expected  # nothing stale kept


def shard(path: Path) -> dict[str, Any]:
    meta = json.loads(path.read_bytes().partition(b"\n")[0])
    entries = cache.read(path, meta["identity"])
    assert entries is not None
    return entries


def test_inventory_bytes_read_before_a_file_changed_again_are_not_kept(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor.inventory import load_inventory

    services_file = min((lab / "hosts").glob("*/services.yaml"))
    walked(lab)
    check = Check(inputs(lab), complete=True)
    original = services_file.read_text()
    services_file.write_text(original.replace("services:\n", "services:\n  added-b: {}\n", 1))
    assert check.update({os.path.realpath(services_file)})  # read it, as `run --watch` does
    assert str(services_file) in check.reading.read
    services_file.write_text(original.replace("services:\n", "services:\n  added-c: {}\n", 1))
    with reading(check.for_loaders()):
        loaded = load_inventory(lab / "hosts")
    node = services_file.parent.name
    assert f"{node}/added-c" in loaded.services and f"{node}/added-b" not in loaded.services
    assert f"{node}/added-c" in load_inventory(lab / "hosts").services  # nothing stale kept


def kept_directories() -> dict[str, Any]:
    """Every directory the world's cache holds, from all its shards."""
    found: dict[str, Any] = {}
    for path in Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("world-*.json"):
        found.update(shard(path)["directories"])
    return found


def test_a_shard_is_read_when_one_of_its_directories_is_first_asked_for(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    check = Check(inputs(lab))
    with reading(check.for_loaders()):
        view = records.walk_view(str(lab / "world"))
    assert view is not None
    read = shard_reads(monkeypatch)
    kept = records.Kept(str(lab / "world"), cache.now_ns())
    assert read == []
    node = "/services/node0001"
    assert kept.whole(node, view.scans[node]) is not None
    scan = view.scans[node]
    stamp = scan.stamp("svc0001.json", {name: at for at, name in enumerate(scan.names)})
    assert kept.earlier(node, "svc0001.json", "node0001/svc0001", stamp) is not records.MISSING
    assert len(read) == 1 and read[0].startswith(f"world-{records._shard(node):02d}-")


def by_sharing() -> dict[str, str]:
    """A node directory of the lab that is alone in its shard, and one that shares it with
    another directory."""
    directories = ["", "/nodes", "/deployments", "/incidents",
                   *(f"/services/node{number:04d}" for number in range(1, 7))]
    shards = [records._shard(relative) for relative in directories]
    found: dict[str, str] = {}
    for relative, shard_number in zip(directories[4:], shards[4:], strict=True):
        found.setdefault("alone" if shards.count(shard_number) == 1 else "sharing",
                         relative.rpartition("/")[2])
    assert found.keys() == {"alone", "sharing"}  # the lab has both, as the tests need
    return found


@pytest.mark.parametrize("sharing", ["alone", "sharing"])
def test_a_whole_load_drops_the_directories_gone_since(
        sharing: str, lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = by_sharing()[sharing]
    walked(lab)
    assert f"/services/{node}" in kept_directories()
    shutil.rmtree(lab / "world" / "services" / node)
    expected = cold(lab, monkeypatch)
    assert walked(lab) == expected
    assert f"/services/{node}" not in kept_directories()
    assert len(kept_directories()) == 9


def test_a_partial_save_keeps_the_directories_not_asked_for(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walked(lab)
    before = kept_directories()
    shards = sorted(Path(os.environ["SUPERVISOR_CACHE_DIR"]).glob("world-*.json"))
    inodes = {path: path.stat().st_ino for path in shards}
    check = Check(inputs(lab))
    with reading(check.for_loaders()):
        view = records.walk_view(str(lab / "world"))
    assert view is not None
    kept = records.Kept(str(lab / "world"), cache.now_ns())
    # One node shares its shard with a directory not asked for; the other is taken whole,
    # unchanged: its shard is not written.
    alone, sharing = f"/services/{by_sharing()['alone']}", f"/services/{by_sharing()['sharing']}"
    assert kept.whole(alone, view.scans[alone]) is not None
    kept.keep(sharing, view.scans[sharing], {"x/svc0001": {"status": "ok"}}, False)
    kept.save(complete=False)
    after = kept_directories()
    assert after.keys() == before.keys()
    assert after[sharing][4] == {"x/svc0001": {"status": "ok"}}
    assert {relative: entry for relative, entry in after.items() if relative != sharing} == {
        relative: entry for relative, entry in before.items() if relative != sharing}
    rewritten = [path.name for path in shards if path.stat().st_ino != inodes[path]]
    assert len(rewritten) == 1
    assert rewritten[0].startswith(f"world-{records._shard(sharing):02d}-")
