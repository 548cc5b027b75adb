"""Which inputs changed: stat first, each file read at most once per run."""

from __future__ import annotations

import collections
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import FIXTURES

from supervisor import cache
from supervisor.inputs import Inputs
from supervisor.manifest import Check, Reading, _files_path, known_stamp, reading
from supervisor.transitions import Paths, run_once
from supervisor.walk import Listing, walk

NOW = "2026-11-26T10:01:00Z"


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(cache, "RACY_NS", -1)  # files written a moment ago count as settled
    shutil.copytree(FIXTURES / "homelab", tmp_path / "homelab")
    return tmp_path / "homelab"


def inputs(lab: Path) -> Inputs:
    return Inputs(inventory=lab / "hosts", world=lab / "world", now=NOW)


def paths(lab: Path) -> Paths:
    return Paths(events=lab.parent / "events.log", checkpoint=lab.parent / "checkpoint.json")


def check(lab: Path) -> Check:
    found = Check(inputs(lab))
    found.save()
    return found


def record(lab: Path) -> Path:
    return lab / "world" / "services" / "media01" / "sonarr.json"


def test_unchanged_inputs_are_not_read(lab: Path) -> None:
    first = check(lab)
    assert first.changed > 0 and first.reading.read  # nothing known yet: all read, once
    again = check(lab)
    assert (again.changed, again.reading.read, again.digest) == (0, {}, first.digest)


def test_only_a_changed_file_is_read_again(lab: Path) -> None:
    first = check(lab)
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    again = check(lab)
    assert list(again.reading.read) == [str(record(lab))]
    assert again.digest != first.digest


def test_a_touched_file_with_the_same_content_keeps_the_digest(lab: Path) -> None:
    first = check(lab)
    os.utime(record(lab), ns=(1, 1))
    again = check(lab)
    assert list(again.reading.read) == [str(record(lab))]  # read to be sure...
    assert again.digest == first.digest  # ...and found the same


def test_any_file_under_the_inputs_counts(lab: Path) -> None:
    first = check(lab)
    (lab / "world" / "notes.txt").write_text("not a record, still an input")
    assert check(lab).digest != first.digest


def test_options_count(lab: Path) -> None:
    assert Check(inputs(lab)).digest != Check(inputs(lab)._replace(max_age=5)).digest


def test_without_a_cache_the_digest_is_the_same(lab: Path, monkeypatch: pytest.MonkeyPatch
                                                ) -> None:
    warm = check(lab)
    monkeypatch.setenv("SUPERVISOR_CACHE", "off")
    assert check(lab).digest == warm.digest


def opened_during(monkeypatch: pytest.MonkeyPatch, lab: Path, action: Any) -> collections.Counter[str]:
    opened: collections.Counter[str] = collections.Counter()
    real = os.open

    def counting(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # Files, not the directories the walk lists.
        if str(path).startswith(str(lab)) and not flags & os.O_DIRECTORY:
            opened[str(path)] += 1
        return real(path, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", counting)
        action()
    return opened


@pytest.mark.parametrize("cached", [True, False])
def test_a_run_opens_each_input_at_most_once(lab: Path, monkeypatch: pytest.MonkeyPatch,
                                             cached: bool) -> None:
    if not cached:
        monkeypatch.setenv("SUPERVISOR_CACHE", "off")
    opened = opened_during(monkeypatch, lab, lambda: run_once(inputs(lab), paths(lab)))
    assert opened and max(opened.values()) == 1
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    opened = opened_during(monkeypatch, lab, lambda: run_once(
        inputs(lab)._replace(now="2026-11-26T10:02:00Z"), paths(lab)))
    if cached:
        assert list(opened) == [str(record(lab))]  # the rest comes from the cache
    else:
        assert opened and max(opened.values()) == 1


def test_an_unchanged_run_is_skipped_and_a_changed_one_is_not(lab: Path) -> None:
    assert not run_once(inputs(lab), paths(lab)).skipped
    assert run_once(inputs(lab), paths(lab)).skipped
    os.utime(record(lab), ns=(1, 1))  # touched, same bytes
    assert run_once(inputs(lab), paths(lab)).skipped
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    assert not run_once(inputs(lab), paths(lab)).skipped


# The digest by directory: a run where a few files changed reads and writes the records of
# their directories only, and the digest is the one every file read afresh gives.


def fresh_digest(lab: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    with monkeypatch.context() as patch:
        patch.setenv("SUPERVISOR_CACHE", "off")
        return Check(inputs(lab)).digest


def test_the_digest_follows_random_changes_as_a_fresh_one_does(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    world = lab / "world"
    for step in range(40):
        files = sorted(path for path in lab.rglob("*") if path.is_file())
        kind = rng.choice(["edit", "edit", "touch", "add", "remove", "directory", "link",
                           "unreadable"])
        target = rng.choice(files)
        if kind == "edit":
            target.write_text(target.read_text() + " ")
        elif kind == "touch":
            os.utime(target, ns=(step, step))
        elif kind == "add":
            (target.parent / f"new{step}.json").write_text("{}")
        elif kind == "remove":
            target.unlink()
        elif kind == "directory":
            folder = world / "services" / f"node{step}"
            if rng.random() < 0.5 and (world / "services").exists():
                for old in sorted((world / "services").iterdir())[:1]:
                    shutil.rmtree(old)
            folder.mkdir(parents=True)
            (folder / "web.json").write_text('{"status": "ok"}')
        elif kind == "link":
            (target.parent / f"link{step}.json").symlink_to(target)
        else:
            target.chmod(0)
        found = check(lab)
        assert found.digest == fresh_digest(lab, monkeypatch), (step, kind, target)
        assert check(lab).digest == found.digest


def hashes_files() -> dict[str, int]:
    folder = Path(os.environ["SUPERVISOR_CACHE_DIR"])
    return {path.name: path.stat().st_mtime_ns for path in folder.glob("hashes-*.json")}


def test_only_a_changed_directorys_records_are_written_again(lab: Path) -> None:
    check(lab)
    before = hashes_files()
    assert len(before) > 3  # one per directory with files
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    again = check(lab)
    after = hashes_files()
    assert after.keys() == before.keys()
    assert [name for name in after if after[name] != before[name]] == [
        _files_path(again.scope, (str(lab / "world"), "/services/media01")).name]


def test_a_removed_directorys_records_go(lab: Path) -> None:
    check(lab)
    before = hashes_files()
    shutil.rmtree(lab / "world" / "services" / "media01")
    check(lab)
    assert len(hashes_files()) == len(before) - 1


def test_damaged_records_of_a_directory_are_read_again(lab: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first = check(lab)
    path = _files_path(first.scope, (str(lab / "world"), "/services/media01"))
    assert path is not None
    path.write_text(path.read_text().replace("0", "1"))  # its checksum no longer holds
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    again = check(lab)
    assert again.digest == fresh_digest(lab, monkeypatch)
    assert again.changes is None  # what changed in that directory cannot be said


def test_a_directory_listed_as_before_within_the_clocks_grain_is_read_again(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A rewrite within the grain of the file system's clock can leave every stamp as it was:
    # here the stamps are made to look unchanged, and only the grain tells.
    real = Listing.by_directory
    monkeypatch.setattr(Listing, "by_directory", lambda self: [
        (directory, b"as before", newest) for directory, _, newest in real(self)])
    check(lab)
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    monkeypatch.setattr(cache, "RACY_NS", 10**18)  # every stamp within the grain
    assert check(lab).digest == fresh_digest(lab, monkeypatch)


def test_a_watching_check_takes_in_a_change_only_from_records_that_give_the_digest(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check(lab)
    kept = Check(inputs(lab), complete=True)  # every directory as recorded: none read
    path = _files_path(kept.scope, (str(lab / "world"), "/services/media01"))
    identity = cache.identity(None)
    recorded = cache.read(path, identity)
    assert recorded is not None and len(recorded["files"]) > 1
    other = next(name for name in sorted(recorded["files"]) if name != record(lab).name)
    recorded["files"][other][4] = "0\0not what it holds"  # records from another moment
    cache.write(path, identity, recorded)
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    taken_in = kept.update({os.path.realpath(record(lab))})
    assert not taken_in or kept.digest == fresh_digest(lab, monkeypatch)


def test_loaders_take_the_walks_stamps_for_what_it_saw_as_regular_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "file.yaml").write_text("x")
    (tree / "a" / "link.yaml").symlink_to(tree / "a" / "file.yaml")
    os.mkfifo(tree / "a" / "fifo")
    (tmp_path / "root.yaml").write_text("y")
    found = Reading()
    found.listing = walk([str(tree), str(tmp_path / "root.yaml")])

    def stamp(path: Path) -> tuple[int, ...]:
        status = path.stat()
        return status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns

    assert found.seen(str(tree / "a" / "file.yaml")) == stamp(tree / "a" / "file.yaml")
    assert found.seen(str(tmp_path / "root.yaml")) == stamp(tmp_path / "root.yaml")
    for unseen in ("a/link.yaml", "a/fifo", "a/missing.yaml", "a", "b/file.yaml"):
        assert found.seen(str(tree / unseen)) is None, unseen
    found.moved = frozenset({str(tree / "a" / "file.yaml")})  # taken in since the walk
    assert found.seen(str(tree / "a" / "file.yaml")) is None
    with reading(found):
        assert known_stamp(str(tree / "a" / "file.yaml")) == stamp(tree / "a" / "file.yaml")


def test_a_directory_read_again_within_the_clocks_grain_and_the_same_is_not_written(
        lab: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = check(lab)
    monkeypatch.setattr(cache, "RACY_NS", 10**18)  # every stamp within the grain
    before = hashes_files()
    os.utime(record(lab), ns=(5, 5))  # the same bytes
    assert check(lab).digest == first.digest
    assert hashes_files() == before  # nothing newly vouched for: nothing written
    record(lab).write_text(record(lab).read_text().replace('"status"', '"status" '))
    changed = check(lab)
    assert changed.digest != first.digest and hashes_files() != before
    monkeypatch.setattr(cache, "RACY_NS", -1)  # settled: what is read now is worth keeping
    written = hashes_files()
    os.utime(record(lab), ns=(6, 6))
    assert check(lab).digest == changed.digest
    assert hashes_files() != written
