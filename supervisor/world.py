"""The actual state: the observer's world snapshot, as a directory or as one file."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.errors import InputError, Problem, raise_if
from supervisor.limits import VARIABLES, Limits, current, too_many
from supervisor.loader import SYMLINK_REFUSED, load_yaml, parse_json, read_text
from supervisor.model import NAME, World
from supervisor.parsed import MISSING, Parsed
from supervisor.schemas import JsonSource
from supervisor.timestamps import parse_time

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
        try:
            document = _read_directory(path, progress)
        except InputError:
            if _stamp(path) == before or attempt == READ_ATTEMPTS:
                raise
            continue  # a record vanished or was half-written by a snapshot in progress
        if _stamp(path) == before:
            return _assemble(document)
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


def _read_directory(root: Path, progress: Progress | None) -> dict[str, Any]:
    """Reads the observer's layout. Paths stay strings and listings come from `scandir`: the
    world can hold a hundred thousand files, and per-file overhead is most of the cost."""
    problems: list[Problem] = []
    base = str(root)
    count = 0
    limits = current()

    cached = Parsed("world", base)

    def record(path: str, definition: str) -> Any:
        nonlocal count
        count += 1
        if progress is not None and count % 1000 == 0:
            progress(count)
        value = cached.get(path)
        if value is not MISSING:
            return value
        try:
            value = read_record(path, definition, limits)
        except InputError as error:
            problems.extend(error.problems)
            return None
        cached.put(path, value)
        return value

    def named(name: str, path: str, what: str) -> str | None:
        if NAME.fullmatch(name):
            return name
        problems.append(Problem(path, message=f"is not a valid {what} name"))
        return None

    document: dict[str, Any] = {"nodes": {}, "services": {}, "deployments": [], "incidents": []}
    meta = record(os.path.join(base, "world.json"), "world")
    if meta is not None:
        document.update(meta)
    for stem, path in _json_files(os.path.join(base, "nodes"), problems):
        if named(stem, path, "node") and (value := record(path, "node")) is not None:
            document["nodes"][stem] = value
    nodes = _entries(os.path.join(base, "services"), problems, directories=True)
    if len(nodes) > limits.nodes:
        raise too_many(os.path.join(base, "services"), "nodes", len(nodes), limits.nodes,
                       VARIABLES["nodes"])
    services = 0
    for node, node_path in nodes:
        node_ok = named(node, node_path, "node")
        files = _json_files(node_path, problems)
        services += len(files)
        if services > limits.services:
            raise too_many(os.path.join(base, "services"), "services", services,
                           limits.services, VARIABLES["services"])
        for stem, path in files:
            if (named(stem, path, "service") and node_ok
                    and (value := record(path, "service")) is not None):
                document["services"][f"{node}/{stem}"] = value
    for kind, definition in (("deployments", "deployment"), ("incidents", "incident")):
        for _, path in _json_files(os.path.join(base, kind), problems):
            if (value := record(path, definition)) is not None:
                document[kind].append(value)
    cached.save()
    raise_if(problems)
    return document


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


def _assemble(document: dict[str, Any]) -> World:
    return World(
        observed_at=parse_time(document["observed_at"]),
        observer=document.get("observer") or {},
        nodes=_sorted_by_key(document.get("nodes", {})),
        services=_sorted_by_key(document.get("services", {})),
        deployments=_chronological(document.get("deployments", []), "started_at"),
        incidents=_chronological(document.get("incidents", []), "opened_at"),
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
