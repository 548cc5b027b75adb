"""The actual state: the observer's world snapshot, as a directory or as one file."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor import cache, records, schemas
from supervisor.errors import InputError, Problem, raise_if
from supervisor.limits import VARIABLES, Limits, current, too_many
from supervisor.loader import SYMLINK_REFUSED, load_yaml, parse_json, read_text
from supervisor.manifest import drop_unless_read_as, walked
from supervisor.model import NAME, World
from supervisor.records import MISSING
from supervisor.schemas import JsonSource
from supervisor.timestamps import parse_time
from supervisor.walk import ABSENT, pack

Progress = Callable[[int], None]


READ_ATTEMPTS = 3
# The observers of `supervisor observe` hold an exclusive flock on this file while they write a
# snapshot (supervisor/observe/snapshot.py names it too); a read shares it.
LOCK_FILE = ".observer.lock"
LOCK_WAIT_SECONDS = 30.0


def load_world(path: Path, progress: Progress | None = None) -> World:
    """Reads the snapshot; `progress` hears the number of records read, every thousand.

    The observer rewrites its directory while we may be reading it. Ours lock it while they
    write, and the read waits for them. Others write `world.json` when a snapshot is complete,
    so a read during which `world.json` changed may mix two snapshots: it is read again, and
    given up with an error after a few tries.
    """
    if not path.exists():
        raise InputError([Problem(str(path), message="world snapshot does not exist")])
    if not path.is_dir():
        return _assemble(_read_file(path))
    with _snapshot_complete(path):
        return _read_consistently(path, progress)


def load_world_part(path: Path, nodes: Iterable[str]) -> World | None:
    """The world as `load_world` reads it, but with the services of `nodes` only (a node with
    no directory gives none): for a run that takes up the last evaluation and needs the few
    nodes whose files changed. Only the directories it reads, and the cache shards holding
    them, are opened; the nodes, deployments and incidents are all read, as `load_world`
    reads them.

    It takes the world as this run's walk saw it (`records.walk_view`), and gives None where
    that cannot be done, or a problem may be there: no walk of the world, no directory,
    world.json changed since the walk or during the read, a record or a listing with a
    problem, a directory in services/ the walk did not see clean (links, subdirectories, or
    files taken in since), a limit that may be crossed. Then the caller loads it all with
    `load_world`, which reports what is wrong. Records of the nodes not asked for are not
    read: that they are as the last evaluation found them is the caller's to know."""
    view = records.walk_view(str(path))
    if view is None or view.world is None:  # (no world.json in a directory: a file, or none)
        return None
    seen = (view.world.st_ino, view.world.st_mtime_ns, view.world.st_size)
    try:
        with _snapshot_complete(path):
            before = _stamp(path)
            if before != seen:
                return None
            document = _read_part(path, view, set(nodes))
            if document is None or _stamp(path) != before:
                return None
            return _assemble(document, chronological=True)
    except InputError:  # a stuck observer, a limit crossed: `load_world` tells
        return None


def _read_part(root: Path, view: records.View, wanted: set[str]) -> dict[str, Any] | None:
    """`_read_directory` for the nodes in `wanted`; None on a problem (see `load_world_part`)."""
    reader = _Reader(root, None, view)
    document = reader.begin()
    services = 0
    for node, _ in reader.node_directories():
        relative = f"/services/{node}"
        if not NAME.fullmatch(node):
            return None
        if node in wanted:
            scan, listing = reader.listed(relative)
            services += len(listing)
            reader.too_many_services(services)
            document["services"].update(reader.services(node, scan, listing))
            continue
        scan = view.scans.get(relative)
        if scan is None:  # not clean, or changed since the walk: only a full read tells
            return None
        services += len(scan.names)  # its records, and maybe a few other files
        reader.too_many_services(services)
    reader.finish(document, complete=False)
    return None if reader.problems else document


@contextlib.contextmanager
def _snapshot_complete(root: Path) -> Iterator[None]:
    """Holds a shared lock on the observer's lock file, if there is one we may open: while an
    observer writes, its exclusive lock makes the read wait for the whole snapshot."""
    if not os.path.lexists(root / LOCK_FILE):  # no observer of ours writes here
        yield
        return
    try:
        descriptor = os.open(root / LOCK_FILE,
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:  # none, or not ours to open: the world.json check alone
        yield
        return
    try:
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise InputError([Problem(str(root / LOCK_FILE), message=(
                        f"an observer has been writing the world for over "
                        f"{LOCK_WAIT_SECONDS:g} s (it holds this lock); is it stuck?"))]
                                     ) from None
                time.sleep(0.02)
            except OSError:
                break  # a file system without flock: the world.json check alone
        yield
    finally:
        os.close(descriptor)


def _read_consistently(path: Path, progress: Progress | None) -> World:
    for attempt in range(1, READ_ATTEMPTS + 1):
        before = _stamp(path)
        # What the walk saw is this snapshot only if world.json is still the one it saw.
        view = records.walk_view(str(path)) if attempt == 1 else None
        if view is not None and (view.world is None or before != (
                view.world.st_ino, view.world.st_mtime_ns, view.world.st_size)):
            view = None
        try:
            document = _read_directory(path, progress, view)
        except InputError:
            if _stamp(path) == before or attempt == READ_ATTEMPTS:
                raise
            continue  # a record vanished or was half-written by a snapshot in progress
        if _stamp(path) == before:
            return _assemble(document, chronological=True)
    raise InputError([Problem(str(path / "world.json"), message=f"changed while the world was "
                              f"read, {READ_ATTEMPTS} times; is the observer writing "
                              "continuously?")])


def _stamp(root: Path) -> tuple[int, int, int] | None:
    """What changes when the observer replaces or rewrites world.json."""
    try:
        status = os.stat(root / "world.json", follow_symlinks=False)
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def _read_file(path: Path) -> dict[str, Any]:
    display = str(path)
    source: schemas.Source
    if path.suffix in (".yaml", ".yml"):
        yaml_document = load_yaml(path, display)
        document, source = yaml_document.value, yaml_document
    else:
        text = read_text(path, display)
        document, source = parse_json(text, display), JsonSource(display, text=text)
    if not isinstance(document, dict):
        raise InputError([Problem(display, message="must be a mapping with 'observed_at'")])
    raise_if(schemas.check("world", document, source))
    return document


class _Reader:
    """One read of the observer's directory. Paths stay strings and listings come from
    `scandir` (or this run's walk, `view`): the world can hold a hundred thousand files, and
    per-file overhead is most of the cost. A directory unchanged since the last run gives its
    records whole, from the cache (records.py)."""

    def __init__(self, root: Path, progress: Progress | None,
                 view: records.View | None) -> None:
        self.problems: list[Problem] = []
        self.base = str(root)
        self.view = view
        self.limits = current()
        self.count = 0
        self.progress = progress
        # Stamps and bytes this run took before its walk's start vouch for nothing later.
        reading = walked()
        self.kept = records.Kept(self.base, min(reading.taken, cache.now_ns()) if reading
                                 else cache.now_ns())

    def counted(self, number: int) -> None:
        if self.progress is not None:
            for thousands in range(self.count // 1000 + 1, (self.count + number) // 1000 + 1):
                self.progress(thousands * 1000)
        self.count += number

    def named(self, name: str, path: str, what: str) -> str | None:
        if NAME.fullmatch(name):
            return name
        self.problems.append(Problem(path, message=f"is not a valid {what} name"))
        return None

    def listed(self, relative: str) -> tuple[records.Scan | None, Any]:
        """The directory's scan, and its records whole (a dict) or its `.json` files."""
        kept = self.kept
        scan = self.view.scans.get(relative) if self.view is not None else None
        if scan is not None:
            whole = kept.whole(relative, scan)
            if whole is not None:
                return scan, whole
            directory = self.base + relative
            return scan, [(name[:-5], f"{directory}/{name}") for name in sorted(scan.names)
                          if not name.startswith(".") and name.endswith(".json")]
        scan, files = _scanned(self.base + relative, self.problems)
        if scan is not None and (whole := kept.whole(relative, scan)) is not None:
            return scan, whole
        return scan, files

    def read(self, relative: str, scan: records.Scan | None, files: list[tuple[str, str]],
             definition: str, prefix: str, what: str | None, when: str | None = None
             ) -> dict[str, Any]:
        """The records of `files` in the directory at `relative`, by key, each from the cache
        if its stamp vouches for it; in time order by their field `when`, if given."""
        found: dict[str, Any] = {}
        clean = True
        kept, limits, problems = self.kept, self.limits, self.problems
        positions = ({name: position for position, name in enumerate(scan.names)}
                     if scan is not None else {})
        for stem, path in files:
            if what is not None and not self.named(stem, path, what):
                clean = False
                continue
            self.counted(1)
            key = prefix + stem
            name = stem + ".json"
            value = (kept.earlier(relative, name, key, scan.stamp(name, positions))
                     if scan is not None else MISSING)
            if value is MISSING:
                drop_unless_read_as(path, scan.stamp(name, positions) if scan else None)
                try:
                    value = read_record(path, definition, limits)
                except InputError as error:
                    problems.extend(error.problems)
                    clean = False
                    continue
            found[key] = value
        if when is not None:
            # Kept in this order, a directory taken whole needs no sorting again: 30,000
            # deployments and incidents cost 50 ms to sort, for each run.
            keys = {id(value): key for key, value in found.items()}
            found = {keys[id(value)]: value for value in _chronological(list(found.values()),
                                                                       when)}
        if scan is not None:
            kept.keep(relative, scan, found, clean)
        return found

    def directory(self, relative: str, definition: str, prefix: str, what: str | None,
                  when: str | None = None) -> dict[str, Any]:
        scan, listing = self.listed(relative)
        if isinstance(listing, dict):
            self.counted(len(listing))
            return listing
        return self.read(relative, scan, listing, definition, prefix, what, when)

    def services(self, node: str, scan: records.Scan | None, listing: Any) -> dict[str, Any]:
        """The records of one node's directory, listed (`listed`) as `scan` and `listing`."""
        if isinstance(listing, dict):
            self.counted(len(listing))
            return listing
        return self.read(f"/services/{node}", scan, listing, "service", f"{node}/", "service")

    def begin(self) -> dict[str, Any]:
        """The document with world.json's fields and the nodes; services and events to come."""
        document: dict[str, Any] = {"nodes": {}, "services": {}, "deployments": [],
                                    "incidents": []}
        self.counted(1)
        meta = _world_record(self.base, self.kept, self.view, self.problems)
        if meta is not None:
            document.update(meta)
        document["nodes"].update(self.directory("/nodes", "node", "", "node"))
        return document

    def node_directories(self) -> list[tuple[str, str]]:
        """(name, path) of the directories in services/, sorted; too many is an error."""
        services = os.path.join(self.base, "services")
        nodes = _entries(services, self.problems, directories=True)
        if len(nodes) > self.limits.nodes:
            raise too_many(services, "nodes", len(nodes), self.limits.nodes, VARIABLES["nodes"])
        return nodes

    def too_many_services(self, count: int) -> None:
        if count > self.limits.services:
            raise too_many(os.path.join(self.base, "services"), "services", count,
                           self.limits.services, VARIABLES["services"])

    def finish(self, document: dict[str, Any], *, complete: bool = True) -> None:
        """The deployments and incidents, then the cache saved (`Kept.save`)."""
        for kind, definition, when in (("deployments", "deployment", "started_at"),
                                       ("incidents", "incident", "opened_at")):
            document[kind].extend(self.directory(f"/{kind}", definition, "", None, when
                                                 ).values())
        self.kept.save(complete=complete)


def _read_directory(root: Path, progress: Progress | None,
                    view: records.View | None = None) -> dict[str, Any]:
    """Reads the observer's layout (see `_Reader`)."""
    reader = _Reader(root, progress, view)
    document = reader.begin()
    services = 0
    for node, node_path in reader.node_directories():
        node_ok = reader.named(node, node_path, "node")
        scan, listing = (reader.listed(f"/services/{node}") if node_ok
                         else (None, _json_files(node_path, reader.problems)))
        services += len(listing)
        reader.too_many_services(services)
        if node_ok:
            document["services"].update(reader.services(node, scan, listing))
        else:  # its records are not read, but their names are still checked
            for stem, path in listing:
                reader.named(stem, path, "service")
    reader.finish(document)
    raise_if(reader.problems)
    return document


def _world_record(base: str, kept: records.Kept, view: records.View | None,
                  problems: list[Problem]) -> dict[str, Any] | None:
    path = os.path.join(base, "world.json")
    status = view.world if view is not None else None
    scan = records.Scan(["world.json"], pack(
        [status if status is not None else _status(path)]), True)
    whole = kept.whole("", scan)
    if whole is not None and isinstance(whole.get("world"), dict):
        return whole["world"]  # type: ignore[no-any-return]
    drop_unless_read_as(path, scan.stamp("world.json", {"world.json": 0}))
    try:
        value = read_record(path, "world")
    except InputError as error:
        problems.extend(error.problems)
        kept.keep("", scan, {}, False)
        return None
    kept.keep("", scan, {"world": value}, True)
    return value


def _status(path: str) -> Any:
    try:
        found = os.stat(path, follow_symlinks=False)
    except OSError:
        return ABSENT
    return found if stat.S_ISREG(found.st_mode) else ABSENT


def _scanned(directory: str, problems: list[Problem]
             ) -> tuple[records.Scan | None, list[tuple[str, str]]]:
    """`_json_files`, with the directory's scan (every entry but subdirectories, stat'ed)."""
    if os.path.islink(directory):
        problems.append(Problem(directory, message=SYMLINK_REFUSED))
        return None, []
    try:
        scanner = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return None, []
    except OSError as error:
        problems.append(Problem(directory, message=f"cannot be listed: {error.strerror}"))
        return None, []
    names: list[str] = []
    statuses: list[Any] = []
    found: list[tuple[str, str]] = []
    clean = True
    with scanner:
        for entry in scanner:
            if entry.is_dir(follow_symlinks=False):
                clean = False
                if (not entry.name.startswith(".") and not entry.is_symlink()
                        and entry.name.endswith(".json")):
                    problems.append(Problem(entry.path, message="is a directory, not a record"))
                continue
            names.append(entry.name)
            statuses.append(_status(entry.path))
            if entry.is_symlink():
                clean = False
                if not entry.name.startswith("."):
                    problems.append(Problem(entry.path, message=SYMLINK_REFUSED))
            elif not entry.name.startswith("."):
                found.append((entry.name, entry.path))
    found.sort()
    return records.Scan(names, pack(statuses), clean), [
        (name[:-5], path) for name, path in found if name.endswith(".json")]


def read_record(path: str, definition: str, limits: Limits | None = None) -> dict[str, Any]:
    """One record of the observer's directory (`definition`: its kind in the world schema),
    read and checked; `InputError` if it cannot be used."""
    limits = limits or current()
    text = read_text(path, follow=False, limits=limits)
    value = parse_json(text, path, limits)
    if not isinstance(value, dict):
        raise InputError([Problem(path, message="must be a JSON object")])
    raise_if(schemas.check("world", value, JsonSource(path, text=text), definition))
    return value


def _entries(directory: str, problems: list[Problem], *, directories: bool
             ) -> list[tuple[str, str]]:
    """(name, path) of the visible files, or directories, in `directory`, sorted by name.

    Hidden entries are the observer's temporaries. Symlinks are reported and not followed:
    the snapshot is what the observer wrote here, and a link could point anywhere.
    """
    if os.path.islink(directory):
        problems.append(Problem(directory, message=SYMLINK_REFUSED))
        return []
    try:
        scanner = os.scandir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as error:
        problems.append(Problem(directory, message=f"cannot be listed: {error.strerror}"))
        return []
    found = []
    with scanner:
        for entry in scanner:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                problems.append(Problem(entry.path, message=SYMLINK_REFUSED))
            elif entry.is_dir(follow_symlinks=False) == directories:
                found.append((entry.name, entry.path))
            elif not directories and entry.name.endswith(".json"):
                problems.append(Problem(entry.path, message="is a directory, not a record"))
    found.sort()
    return found


def _json_files(directory: str, problems: list[Problem]) -> list[tuple[str, str]]:
    """(stem, path) of the `.json` records in `directory`; other suffixes are not records."""
    return [(name[:-5], path) for name, path in _entries(directory, problems, directories=False)
            if name.endswith(".json")]


def _assemble(document: dict[str, Any], *, chronological: bool = False) -> World:
    """`chronological`: the deployments and incidents are in time order already."""
    in_order = (lambda records, _: records) if chronological else _chronological
    return World(
        observed_at=parse_time(document["observed_at"]),
        observer=document.get("observer") or {},
        nodes=_sorted_by_key(document.get("nodes", {})),
        services=_sorted_by_key(document.get("services", {})),
        deployments=in_order(document.get("deployments", []), "started_at"),
        incidents=in_order(document.get("incidents", []), "opened_at"),
    )


def _sorted_by_key(records: dict[str, Any]) -> dict[str, Any]:
    keys = list(records)
    # The directory's records arrive sorted already: checking costs less than sorting.
    if all(first < second for first, second in itertools.pairwise(keys)):
        return records
    return dict(sorted(records.items()))


def _chronological(records: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """By time, then id; ties (an observer repeating an id) are broken by the whole record, so
    that the order records were listed in never changes the result. The whole record is
    written out only for those ties: for all of them it would cost more than the sort."""
    def when(record: dict[str, Any]) -> tuple[datetime, str]:
        return parse_time(record[key]), str(record.get("id", ""))

    keyed = sorted(((when(record), record) for record in records), key=lambda pair: pair[0])
    ordered: list[dict[str, Any]] = []
    start = 0
    while start < len(keyed):
        end = start + 1
        while end < len(keyed) and keyed[end][0] == keyed[start][0]:
            end += 1
        tied = [record for _, record in keyed[start:end]]
        if len(tied) > 1:
            tied.sort(key=lambda record: json.dumps(record, sort_keys=True, default=str))
        ordered.extend(tied)
        start = end
    return ordered
