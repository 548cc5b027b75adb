"""Writing one observation as one consistent world snapshot (the layout of SPEC's world
directory), for every observer.

Readers (`eval`, `run --watch`) may read while we write. So each file is replaced atomically
(a hidden temporary, fsync, rename; readers skip hidden names), records of subjects that
vanished are removed, and `world.json` with the new `observed_at` is written last: a reader
that saw `world.json` change while it read reads again. A node whose source could not say what
runs on it keeps its service records, so that a failing endpoint shows as an offline node, never
as every service gone. Unchanged files are not rewritten: a watcher sees only what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor.errors import Problem, SupervisorError
from supervisor.model import NAME
from supervisor.safefile import UnsafeFileError, open_file, sync_directory, wait_for_lock
from supervisor.timestamps import format_time

# Hidden, so that watchers ignore it; held exclusively while a snapshot is written, and
# shared by `world.load_world` while it reads (which names it too).
LOCK_FILE = ".observer.lock"
LOCK_WAIT_SECONDS = 60.0
NODE_STATUSES = ("online", "offline", "unknown")
_SAFE_STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:-]{0,127}")


class SnapshotError(SupervisorError):
    """The observation cannot be written: a bad name, or a world directory we cannot write."""


@dataclass(frozen=True)
class NodeObservation:
    """What one source said about one node.

    `last_seen` None keeps the previous snapshot's (a node that does not answer was last seen
    when it last answered). `services` None means the source could not say what runs there:
    the node's service records from the previous snapshot are kept as they are.
    """

    status: str
    last_seen: datetime | None = None
    services: dict[str, dict[str, Any]] | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # more fields for the node record


@dataclass(frozen=True)
class Observation:
    """One observation of the whole world a source sees. Nodes absent from `nodes` are gone,
    with their services. `incidents` and `deployments` None: this source does not observe
    them, and whatever records are there are left alone; a list (even empty) replaces them."""

    observed_at: datetime
    observer: dict[str, str]
    nodes: dict[str, NodeObservation]
    incidents: list[dict[str, Any]] | None = None
    deployments: list[dict[str, Any]] | None = None


@dataclass
class Written:
    """What `write_snapshot` changed, for logs and tests."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0


def render(record: dict[str, Any]) -> bytes:
    """One record's file content: sorted keys, so the same observation gives the same bytes."""
    return (json.dumps(record, sort_keys=True, indent=2, ensure_ascii=False,
                       default=_timestamp) + "\n").encode()


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return format_time(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def record_stem(record_id: str) -> str:
    """A file name for an incident or deployment id. Ids come from other programs; one that
    would not be a safe file name gets a digest instead (the record itself keeps the id)."""
    if _SAFE_STEM.fullmatch(record_id):
        return record_id
    return "id-" + hashlib.sha256(record_id.encode()).hexdigest()[:32]


def write_snapshot(root: Path, observation: Observation) -> Written:
    """Makes `root` hold exactly `observation`, `world.json` last, under an exclusive lock on
    the lock file: readers wait for the snapshot to be whole, and two observers started by
    mistake on one directory take turns."""
    planned = _plan(root, observation)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SnapshotError([Problem(str(root), message="cannot create the world directory: "
                                     f"{error.strerror}")]) from None
    # Readable by all, unlike safefile's state files: readers of other users share the lock.
    descriptor = open_file(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, mode=0o644)
    try:
        wait_for_lock(root / LOCK_FILE, descriptor, fcntl.LOCK_EX, LOCK_WAIT_SECONDS)
        return _apply(root, observation, planned)
    finally:
        os.close(descriptor)


def _plan(root: Path, observation: Observation) -> dict[str, bytes]:
    """Relative path → content of every record file the snapshot holds, world.json aside."""
    problems: list[Problem] = []
    files: dict[str, bytes] = {}
    previous = _previous_nodes(root)
    for node, seen in observation.nodes.items():
        if not NAME.fullmatch(node):
            problems.append(Problem(path=f"node {node!r}", message="is not a valid node name"))
            continue
        if seen.status not in NODE_STATUSES:
            problems.append(Problem(path=f"node {node}", message=f"status {seen.status!r} is "
                                    f"not one of {', '.join(NODE_STATUSES)}"))
            continue
        record: dict[str, Any] = {**seen.fields, "status": seen.status}
        last_seen = seen.last_seen or previous.get(node)
        if last_seen is not None:
            record["last_seen"] = last_seen
        files[f"nodes/{node}.json"] = render(record)
        for service, service_record in (seen.services or {}).items():
            if not NAME.fullmatch(service):
                problems.append(Problem(path=f"node {node}", message=f"service name {service!r} "
                                        "is not valid"))
                continue
            files[f"services/{node}/{service}.json"] = render(service_record)
    for kind, records in (("incidents", observation.incidents),
                          ("deployments", observation.deployments)):
        for record in records or []:
            if not isinstance(record.get("id"), str) or not record["id"]:
                problems.append(Problem(path=kind, message=f"a record has no id: {record!r:.80}"))
                continue
            files[f"{kind}/{record_stem(record['id'])}.json"] = render(record)
    if problems:
        raise SnapshotError(problems)
    return files


def _previous_nodes(root: Path) -> dict[str, str]:
    """`last_seen` of each node in the snapshot being replaced (unreadable records: none)."""
    seen: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(root / "nodes"):
            if entry.name.startswith(".") or not entry.name.endswith(".json"):
                continue
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(Path(entry.path).read_bytes())
                if isinstance(record, dict) and isinstance(record.get("last_seen"), str):
                    seen[entry.name[:-5]] = record["last_seen"]
    return seen


def _apply(root: Path, observation: Observation, files: dict[str, bytes]) -> Written:
    done = Written()
    touched: set[Path] = set()
    for relative, content in sorted(files.items()):
        path = root / relative
        if _content(path) == content:
            done.unchanged += 1
            continue
        _make_directory(path.parent, root, touched)
        _replace(path, content)
        touched.add(path.parent)
        done.written.append(relative)
    for relative in _stale(root, observation, files):
        path = root / relative
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            touched.add(path.parent)
            done.removed.append(relative)
    _remove_empty_node_directories(root, observation, touched)
    for directory in sorted(touched):
        with contextlib.suppress(FileNotFoundError):
            sync_directory(directory)
    world = {"observed_at": format_time(observation.observed_at),
             "observer": dict(observation.observer)}
    _replace(root / "world.json", render(world))
    sync_directory(root)
    done.written.append("world.json")
    return done


def _stale(root: Path, observation: Observation, files: dict[str, bytes]) -> list[str]:
    """Record files on disk that this snapshot no longer holds."""
    kept_nodes = {node for node, seen in observation.nodes.items() if seen.services is None}
    stale = [f"nodes/{stem}" for stem in _records(root / "nodes")
             if f"nodes/{stem}" not in files]
    for node in _directories(root / "services"):
        if node in kept_nodes:
            continue  # its source could not say: what was there stays
        stale.extend(f"services/{node}/{name}" for name in _records(root / "services" / node)
                     if f"services/{node}/{name}" not in files)
    for kind, records in (("incidents", observation.incidents),
                          ("deployments", observation.deployments)):
        if records is not None:
            stale.extend(f"{kind}/{name}" for name in _records(root / kind)
                         if f"{kind}/{name}" not in files)
    return stale


def _records(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory)
                      if entry.name.endswith(".json") and not entry.name.startswith(".")
                      and not entry.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _directories(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in os.scandir(directory)
                      if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _remove_empty_node_directories(root: Path, observation: Observation,
                                   touched: set[Path]) -> None:
    for node in _directories(root / "services"):
        if node not in observation.nodes:
            with contextlib.suppress(OSError):  # not empty: something not ours lives there
                (root / "services" / node).rmdir()
                touched.discard(root / "services" / node)
                touched.add(root / "services")


def _content(path: Path) -> bytes | None:
    try:
        descriptor = open_file(path, os.O_RDONLY)
    except UnsafeFileError:
        return None
    try:
        with os.fdopen(descriptor, "rb") as existing:
            return existing.read()
    except OSError:
        return None


def _make_directory(directory: Path, root: Path, touched: set[Path]) -> None:
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SnapshotError([Problem(str(directory), message="cannot be created: "
                                     f"{error.strerror}")]) from None
    parent = directory.parent
    while parent != root.parent:
        touched.add(parent)
        parent = parent.parent


def _replace(path: Path, content: bytes) -> None:
    """Like `safefile.replace_atomically`, but the directory is synced once per snapshot
    rather than once per record."""
    temporary = path.parent / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=0o644)
    try:
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.rename(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise SnapshotError([Problem(str(path), message=f"cannot be written: {error.strerror}")]
                            ) from None
