"""Have the inputs changed since the last run? Stat first, read only what may have changed.

`run` skips a run whose inputs are byte-identical to the last evaluated ones. Finding that out
used to read and hash every file; now each file is stat'ed, and a file keeps the hash recorded
for it as long as its stamp (inode, mtime_ns, size, ctime_ns) is unchanged and was trusted (see
`cache.trusted`). The few files that may have changed are read and hashed, and their bytes are
handed to the loaders (`prefetched`), so that no input is read twice in one run.

The digest covers every file under the inputs' roots and the options, as before: equal digests
mean equal inputs. The per-file hashes live in the cache directory; without them (first run,
cache off or unusable) every file is read once, hashed, and its bytes given to the loaders.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from supervisor import cache
from supervisor.cache import Stamp
from supervisor.walk import Directory, Listing, follow, walk

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from supervisor.engine import Evaluation
    from supervisor.inputs import Inputs, Loaded

UNREADABLE = "unreadable"


class Reading:
    """One run's reads so far: the stamps the walk saw and the bytes it had to read."""

    def __init__(self) -> None:
        self.read: dict[str, tuple[os.stat_result, bytes]] = {}
        # The walk itself, for loaders that take whole directories from it (world.py): when it
        # began (a stamp it saw vouches for a file no later than that), and the files taken in
        # since (`Check.update`), whose statuses in it are stale.
        self.listing: Listing | None = None
        self.taken = 0
        self.moved: frozenset[str] = frozenset()
        # The walk's directories by path, and their files' places, as loaders ask: the few
        # files loaders stat (the inventory, the rules) need no index of every file.
        self._directories: dict[str, Directory] | None = None
        self._places: dict[str, dict[str, int]] = {}
        self._links: set[int] = set()

    def take(self, path: str) -> tuple[os.stat_result, bytes] | None:
        return self.read.pop(path, None)

    def seen(self, path: str) -> Stamp | None:
        """The stamp the walk saw for the regular file at `path`; None where it saw none (no
        such file, a link, a file taken in since): then it is stat'ed again."""
        listing = self.listing
        if listing is None or path in self.moved:
            return None
        folder, _, name = path.rpartition("/")
        directory = self.listed(folder)
        if directory is None:
            directory, folder, name = self.listed(path), path, ""  # a file root
            if directory is None or directory.names != [""]:
                return None
        places = self._places.get(folder)
        if places is None:
            places = self._places[folder] = {entry: directory.first + index
                                             for index, entry in enumerate(directory.names)}
        position = places.get(name)
        if position is None or position in self._links:
            return None
        status = listing.statuses[position]
        if not isinstance(status, os.stat_result):
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns

    def listed(self, path: str) -> Directory | None:
        """The walk's listing of the directory (or file root) at `path`, if it listed one: its
        files' names, not its subdirectories'."""
        listing = self.listing
        if listing is None:
            return None
        if self._directories is None:
            self._directories = {listing.roots[directory.root] + directory.relative: directory
                                 for directory in listing.directories}
            self._links = set(listing.links)
        return self._directories.get(path)


_CURRENT: ContextVar[Reading | None] = ContextVar("reading", default=None)


@contextlib.contextmanager
def reading(current: Reading) -> Iterator[None]:
    """Loaders inside the block take already-read bytes and stamps from `current`."""
    token = _CURRENT.set(current)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def prefetched(path: str) -> tuple[os.stat_result, bytes] | None:
    """The status and bytes of `path` if this run already read it (as a regular file)."""
    current = _CURRENT.get()
    return current.take(path) if current is not None else None


def drop_unless_read_as(path: str, stamp: Stamp | None) -> None:
    """Bytes this run read of `path` are dropped unless read at `stamp`, the one a loader is
    about to keep its value under: a file replaced since the digest check read it is read
    again, so that no value is ever kept under a stamp newer than its bytes."""
    current = _CURRENT.get()
    if current is not None and path in current.read:
        status = current.read[path][0]
        if stamp != (status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns):
            del current.read[path]


def walked() -> Reading | None:
    """This run's reads, if the loaders run inside `reading` after a walk."""
    current = _CURRENT.get()
    return current if current is not None and current.listing is not None else None


def known_stamp(path: str) -> Stamp | None:
    """The stamp this run's walk saw for `path`, else a fresh one."""
    current = _CURRENT.get()
    found = current.seen(path) if current is not None else None
    return found if found is not None else cache.stamp_of(path)


class Check:
    """The inputs as found now: their digest, and what was read to compute it.

    The digest hashes every directory's digest in turn, and each directory's digest hashes its
    files' contents. Three kinds of cache file: a small summary (a hash of every file's stamp,
    and the digest it gave), which is all an unchanged run reads; an index of the directories
    (per directory, a hash of its files' names and stamps, when they were taken, and its
    digest), which a run with changes reads; and per directory, its files' stamps and hashes,
    read only for a directory whose stamps changed. A run where one file changed reads and
    writes the records of one directory.
    """

    def __init__(self, inputs: Inputs, *, complete: bool = False) -> None:
        """`complete`: keep every directory's place in the digest, for `update` (a watching
        process)."""
        history = () if inputs.remediations is None else (inputs.remediations,)
        roots = [str(root) for root in (inputs.inventory, inputs.world, *inputs.rule_sources(),
                                        *history)]
        scope = repr([os.path.abspath(root) for root in roots])
        self.reading = Reading()
        self._identity = cache.identity(None)
        self._summary_path = cache.cache_path("inputs", scope)
        self._index_path = cache.cache_path("directories", scope)
        self.taken = cache.now_ns()
        self.changed = 0
        # The digest these files gave with the hashes recorded for them (`previous`), and the
        # files whose contents changed since (paths as walked): what memo.py needs to take up
        # an evaluation of the inputs as they were. Both None when that cannot be said (a
        # file added, removed or unreadable in a directory that changed).
        self.previous: str | None = None
        self.changes: set[str] | None = None
        self.scope = scope
        # (root as given, directory relative to it) -> [stamps, taken, digest]: the index.
        self._index: dict[tuple[str, str], list[Any]] = {}
        self._recorded: dict[str, Any] = {}
        # Each directory's files' [ino, mtime_ns, size, ctime_ns, hash, taken], where read.
        self._files: dict[tuple[str, str], dict[str, list[Any]]] = {}
        self._new: set[tuple[str, str]] = set()  # directories whose files' records are new
        self._parts: list[str] = []
        self._part: dict[tuple[str, str], int] = {}
        self._names: dict[tuple[str, str], list[str]] = {}
        self._moved: set[str] = set()
        self._roots = [(base, os.path.realpath(base)) for base in roots]

        # A hundred thousand files: the collector is paused, since it would walk the growing
        # lists of stamps and hashes again and again, and frees nothing here.
        paused = gc.isenabled()
        gc.disable()
        try:
            self._find(inputs, roots, complete)
        finally:
            if paused:
                gc.enable()

    def _find(self, inputs: Inputs, roots: list[str], complete: bool) -> None:
        # Here and below, not at the top: `eval` imports this module for `known_stamp` and
        # `prefetched` only, and OpenSSL is a twentieth of its start.
        import hashlib

        options = (inputs.now, inputs.max_age, inputs.max_skew,
                   [str(source) for source in inputs.rule_sources()])
        # This walk is all an unchanged run does, so it is kept lean.
        self._listing = walk(roots)
        stamps, newest = self._listing.stamps()
        self._stamps = hashlib.sha256(repr(options).encode("utf-8", "surrogateescape") + stamps
                                      ).hexdigest()

        summary = cache.read(self._summary_path, self._identity) or {}
        taken = summary.get("taken")
        if (not complete and summary.get("stamps") == self._stamps and isinstance(taken, int)
                and isinstance(summary.get("digest"), str)
                and taken - newest > cache.RACY_NS):
            self.digest: str = summary["digest"]
            self.previous, self.changes = self.digest, set()
            return
        self._recorded = cache.read(self._index_path, self._identity) or {}
        parts = [repr(options)]
        changes: set[str] | None = set()
        earlier: dict[int, str] = {}  # where the recorded hashes give other parts
        current = None
        statuses, links = self._listing.statuses, set(self._listing.links)
        for directory, stamped, newest_here in self._listing.by_directory():
            if not directory.names:
                continue
            base = roots[directory.root]
            if base != current:
                current = base
                parts.append(f"\0root {base}\0")
            key = (base, directory.relative)
            stamps_hex = stamped.hex()
            recorded = _indexed(self._recorded, key)
            if recorded is not None and recorded[0] == stamps_hex and cache.trusted(
                    (0, newest_here, 0, newest_here), recorded[1]):
                self._index[key] = recorded  # not a name or a stamp changed since
                if complete:
                    self._part[key], self._names[key] = len(parts), directory.names
                parts.append(f"\0dir {directory.relative}\0{recorded[2]}")
                continue
            before = self._read_files(key) if recorded is not None else {}
            files: dict[str, list[Any]] = {}
            unreadable = False
            for name, position in sorted(zip(directory.names, itertools.count(directory.first))):
                found = statuses[position]
                status = found if isinstance(found, os.stat_result) else None
                relative = f"{directory.relative}/{name}" if name else directory.relative
                entry = self._hash(base + relative, cache.stamp_from(status) if status else None,
                                   position in links, before.get(name))
                if entry is None:
                    unreadable = True
                    continue
                files[name] = entry
                earlier_entry = before.get(name)
                if (changes is not None and earlier_entry is not None
                        and earlier_entry[4] != entry[4]):
                    changes.add(base + relative)
            if changes is not None and (unreadable or (recorded is not None
                                                       and files.keys() != before.keys())):
                changes = None
            digest = _directory_digest(directory.names, files)
            if recorded is not None and changes is not None:
                digest_before = _directory_digest(directory.names, before)
                earlier[len(parts)] = f"\0dir {directory.relative}\0{digest_before}"
            self._files[key] = files
            if recorded is not None and recorded[2] == digest and all(
                    entry is before.get(name) or not cache.trusted(entry, entry[5])
                    for name, entry in files.items()):
                # Read again only because written within the clock's grain, and the same:
                # records written now would vouch for nothing more, so the old ones stay.
                self._index[key] = recorded
            else:
                self._index[key] = [stamps_hex, self.taken, digest]
                self._new.add(key)
            if complete:
                self._part[key], self._names[key] = len(parts), directory.names
            parts.append(f"\0dir {directory.relative}\0{digest}")
        self._parts = parts
        self.digest = _digest(parts)
        if changes is not None:
            self.changes = changes
            self.previous = _digest([earlier.get(index, part)
                                     for index, part in enumerate(parts)]
                                    ) if earlier else self.digest
        self.changed += 1  # the summary, at least, is new

    def _read_files(self, key: tuple[str, str]) -> dict[str, list[Any]]:
        """A directory's files' records, as far as they are in the shape written here."""
        recorded = cache.read(_files_path(self.scope, key), self._identity) or {}
        files = recorded.get("files")
        if not isinstance(files, dict):
            return {}
        return {name: entry for name, entry in files.items()
                if type(entry) is list and len(entry) == 6 and type(entry[4]) is str
                and all(type(number) is int for number in (*entry[:4], entry[5]))}

    def update(self, changed: set[str]) -> bool:
        """Takes in the files at `changed` (real paths, as a watcher reports them) without
        walking everything again; False if that cannot be done (a file added, removed or not
        one of the inputs), and a new walk is needed. Only for a `complete` check."""
        self.reading = Reading()
        self._moved |= {self._path_of(real_path) for real_path in changed}
        for real_path in changed:
            place = self._place(real_path)
            if place is None:
                return False
            base, relative = place
            folder, _, name = relative.rpartition("/")
            key = (base, folder)
            files = self._files.get(key)
            if files is None and key in self._part:
                # The directory was unchanged at the walk: its records, if they still give
                # its digest.
                files = self._read_files(key)
                if _directory_digest(self._names[key], files) != self._index[key][2]:
                    return False
                self._files[key] = files
            entry = files.get(name) if files is not None else None
            path = base + relative if relative else base
            stamp, linked = _stamp(path)
            if files is None or entry is None or stamp is None or linked:
                return False
            fresh = self._hash(path, stamp, False, entry)
            if fresh is None:
                return False
            files[name] = fresh
            digest = _directory_digest(self._names[key], files)
            self._index[key] = [self._index[key][0], self.taken, digest]
            self._new.add(key)
            self._parts[self._part[key]] = f"\0dir {folder}\0{digest}"
        self.digest = _digest(self._parts)
        return True

    def _path_of(self, real_path: str) -> str:
        place = self._place(real_path)
        return real_path if place is None else place[0] + place[1]

    def _place(self, real_path: str) -> tuple[str, str] | None:
        """(root as given, path relative to it) of a real path under one of the inputs."""
        for base, real in self._roots:
            if real_path == real:
                return base, ""
            if real_path.startswith(real + os.sep):
                return base, real_path[len(real):]
        return None

    def for_loaders(self) -> Reading:
        """What the loaders may take instead of reading and stat'ing again."""
        self.reading.listing, self.reading.taken = self._listing, self.taken
        # Files taken in since the walk (`update`) have newer stamps: stat'ed again.
        self.reading.moved = frozenset(self._moved)
        return self.reading

    def _hash(self, path: str, stamp: Stamp | None, linked: bool, entry: Any) -> list[Any] | None:
        import hashlib

        if stamp is None:
            return None
        if (isinstance(entry, list) and len(entry) == 6 and tuple(entry[:4]) == stamp
                and isinstance(entry[5], int) and cache.trusted(stamp, entry[5])
                and isinstance(entry[4], str)):
            return entry
        self.changed += 1
        # Not blocking on a FIFO, nor following a link planted since the stat.
        extra = os.O_NONBLOCK | (0 if linked else os.O_NOFOLLOW)
        try:
            with open(path, "rb", buffering=0,
                      opener=lambda name, flags: os.open(name, flags | extra)) as handle:
                status = os.fstat(handle.fileno())
                data = handle.read()
        except OSError:
            return None
        if not linked and stat.S_ISREG(status.st_mode):
            self.reading.read[path] = (status, data)
        fresh = cache.stamp_from(status)
        if fresh is None:
            return None
        return [*fresh, f"{len(data)}\0{hashlib.sha256(data).hexdigest()}", self.taken]

    def save(self) -> None:
        """Records the hashes for the next run, if anything changed: each changed directory's
        files first, then the index, then the summary (a run stopped in between finds records
        that its stamps do not match, and reads again)."""
        if not self.changed:
            return
        for key in sorted(self._new):
            cache.write(_files_path(self.scope, key), self._identity,
                        {"files": self._files[key]})
        index: dict[str, dict[str, list[Any]]] = {}
        for (base, relative), record in self._index.items():
            index.setdefault(base, {})[relative] = record
        cache.write(self._index_path, self._identity, index)
        # Directories no longer there: their records go.
        for base, directories in self._recorded.items():
            if isinstance(directories, dict):
                for relative in directories:
                    if (base, relative) not in self._index:
                        cache.remove(_files_path(self.scope, (base, relative)))
        cache.write(self._summary_path, self._identity,
                    {"stamps": self._stamps, "digest": self.digest, "taken": self.taken})


def _indexed(recorded: dict[str, Any], key: tuple[str, str]) -> list[Any] | None:
    """A directory's [stamps, taken, digest] in the index, if in the shape written here."""
    directories = recorded.get(key[0])
    entry = directories.get(key[1]) if isinstance(directories, dict) else None
    if (type(entry) is list and len(entry) == 3 and type(entry[0]) is str
            and type(entry[1]) is int and type(entry[2]) is str):
        return entry
    return None


def _files_path(scope: str, key: tuple[str, str]) -> Path | None:
    return cache.cache_path("hashes", f"{scope}\0{key[0]}\0{key[1]}")


def _directory_digest(names: list[str], files: dict[str, list[Any]]) -> str:
    """The digest of a directory's files (`names`, with their records in `files`)."""
    return _digest([f"\0{name}\0{files[name][4] if name in files else UNREADABLE}"
                    for name in sorted(names)])


class Source(Protocol):
    """Where `run` gets its inputs' digest and, when they changed, their evaluation."""

    def fingerprint(self, inputs: Inputs) -> str: ...

    def evaluate(self, inputs: Inputs, now: datetime) -> tuple[Loaded, Evaluation]: ...


class Fresh:
    """Where a run's inputs come from when no process keeps them between runs: a stat-first
    check, then everything loaded (from the cache of parsed files where it can) and evaluated,
    or only what changed since the last evaluation of these inputs (memo.py)."""

    def __init__(self) -> None:
        self._check: Check | None = None
        self.resumed = False  # the last evaluation took up a remembered one

    def fingerprint(self, inputs: Inputs) -> str:
        self._check = Check(inputs)
        self._check.save()
        return self._check.digest

    def evaluate(self, inputs: Inputs, now: datetime) -> tuple[Loaded, Evaluation]:
        from supervisor import memo  # only when there is work to do

        assert self._check is not None, "fingerprint first"
        # Loaded with the collector paused, the evaluation's millions of objects would all be
        # walked by its first pass afterwards (half a second at 100,000 services, freeing
        # nothing): frozen before it resumes, they are left out. The last run's, no longer
        # used, go back to it.
        gc.unfreeze()
        paused = gc.isenabled()
        gc.disable()
        try:
            with reading(self._check.for_loaders()):
                loaded, evaluation, self.resumed = memo.evaluate(inputs, now, self._check)
            gc.freeze()
        finally:
            if paused:
                gc.enable()
        return loaded, evaluation


def _digest(parts: list[str]) -> str:
    import hashlib

    return hashlib.sha256("".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _stamp(path: str) -> tuple[Stamp | None, bool]:
    """The file's stamp now (of what it points to, for a link), and whether it is a link."""
    try:
        status = os.stat(path, follow_symlinks=False)
    except OSError:
        return None, False
    linked = stat.S_ISLNK(status.st_mode)
    target = follow(path) if linked else status
    return (cache.stamp_from(target) if target is not None else None), linked
