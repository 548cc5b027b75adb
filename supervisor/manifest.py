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
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from supervisor import cache
from supervisor.cache import Stamp
from supervisor.walk import Listing, Walked, follow, walk

if TYPE_CHECKING:
    from datetime import datetime

    from supervisor.engine import Evaluation
    from supervisor.inputs import Inputs, Loaded

UNREADABLE = "unreadable"


class Reading:
    """One run's reads so far: the stamps the walk saw and the bytes it had to read."""

    def __init__(self) -> None:
        self.stamps: dict[str, Stamp] = {}
        self.read: dict[str, tuple[os.stat_result, bytes]] = {}
        # The walk itself, for loaders that take whole directories from it (world.py): when it
        # began (a stamp it saw vouches for a file no later than that), and the files taken in
        # since (`Check.update`), whose statuses in it are stale.
        self.listing: Listing | None = None
        self.taken = 0
        self.moved: frozenset[str] = frozenset()

    def take(self, path: str) -> tuple[os.stat_result, bytes] | None:
        return self.read.pop(path, None)


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


def walked() -> Reading | None:
    """This run's reads, if the loaders run inside `reading` after a walk."""
    current = _CURRENT.get()
    return current if current is not None and current.listing is not None else None


def known_stamp(path: str) -> Stamp | None:
    """The stamp this run's walk saw for `path`, else a fresh one."""
    current = _CURRENT.get()
    if current is not None and path in current.stamps:
        return current.stamps[path]
    return cache.stamp_of(path)


class Check:
    """The inputs as found now: their digest, and what was read to compute it.

    Two cache files: a small summary (a hash of every file's stamp, and the digest it gave),
    which is all an unchanged run reads; and every file's hash, for runs where some changed.
    """

    def __init__(self, inputs: Inputs, *, complete: bool = False) -> None:
        """`complete`: keep every file's hash in memory, for `update` (a watching process)."""
        history = () if inputs.remediations is None else (inputs.remediations,)
        roots = [str(root) for root in (inputs.inventory, inputs.world, *inputs.rule_sources(),
                                        *history)]
        scope = repr([os.path.abspath(root) for root in roots])
        self.reading = Reading()
        self._identity = cache.identity(None)
        self._summary_path = cache.cache_path("inputs", scope)
        self._files_path = cache.cache_path("hashes", scope)
        self.taken = cache.now_ns()
        self.changed = 0
        # The digest these files gave with the hashes recorded for them (`previous`), and the
        # files whose contents changed since (paths as walked): what memo.py needs to take up
        # an evaluation of the inputs as they were. A file without a recorded hash counts as
        # unchanged: if it is new, `previous` is the digest of no earlier inputs. Both None
        # when a file cannot be read.
        self.previous: str | None = None
        self.changes: set[str] | None = None
        self.scope = scope
        self.options = ""
        self._hashes: dict[str, dict[str, list[Any]]] = {}
        self._parts: list[str] = []
        self._part: dict[str, int] = {}
        self._moved: set[str] = set()
        self._files: list[Walked] | None = None
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
        self.options = repr(options)
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
        recorded = cache.read(self._files_path, self._identity) or {}
        # The digest hashes these parts in order; `update` replaces a few and hashes again.
        parts = [repr(options)]
        self._part = {}
        current = None
        known: dict[str, Any] = {}
        hashes: dict[str, list[Any]] = {}
        racy = cache.RACY_NS
        changes: set[str] | None = set()
        earlier_parts: dict[int, str] = {}  # where the recorded hashes give other parts
        for base, relative, status, linked in self._walked():
            if base != current:
                current = base
                parts.append(f"\0root {base}\0")
                earlier = recorded.get(base)
                known = earlier if isinstance(earlier, dict) else {}
                hashes = self._hashes[base] = {}
            entry = recorded_entry = known.get(relative)
            # Most files, inline: the stamp is the one recorded with the hash, and was trusted
            # then (as `_hash` checks it).
            if not (status is not None and type(entry) is list and len(entry) == 6
                    and entry[0] == status.st_ino and entry[1] == status.st_mtime_ns
                    and entry[2] == status.st_size and entry[3] == status.st_ctime_ns
                    and type(entry[5]) is int and entry[5] - max(entry[1], entry[3]) > racy
                    and type(entry[4]) is str):
                seen = cache.stamp_from(status) if status is not None else None
                entry = self._hash(base + relative, seen, linked, entry)
            if complete:
                self._part[base + relative] = len(parts)
            if entry is not recorded_entry and changes is not None:
                if entry is None:
                    changes = None
                elif (type(recorded_entry) is list and len(recorded_entry) == 6
                        and type(recorded_entry[4]) is str and entry[4] != recorded_entry[4]):
                    changes.add(base + relative)
                    earlier_parts[len(parts)] = f"\0{relative}\0{recorded_entry[4]}"
            parts.append(f"\0{relative}\0{entry[4] if entry else UNREADABLE}")
            if entry is not None:
                hashes[relative] = entry
        self._parts = parts
        self.digest = _digest(parts)
        if changes is not None:
            self.changes = changes
            self.previous = _digest([earlier_parts.get(index, part)
                                     for index, part in enumerate(parts)]
                                    ) if earlier_parts else self.digest
        self.changed += 1  # the summary, at least, is new

    def _walked(self) -> list[Walked]:
        if self._files is None:
            self._files = self._listing.walked()
        return self._files

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
            entry = self._hashes.get(base, {}).get(relative)
            path = base + relative if relative else base
            stamp, linked = _stamp(path)
            if entry is None or stamp is None or linked:
                return False
            fresh = self._hash(path, stamp, False, entry)
            if fresh is None:
                return False
            self._hashes[base][relative] = fresh
            self._parts[self._part[path]] = f"\0{relative}\0{fresh[4]}"
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
        stamps = self.reading.stamps
        self.reading.listing, self.reading.taken = self._listing, self.taken
        self.reading.moved = frozenset(self._moved)
        for base, relative, status, linked in self._walked():
            path = base + relative
            # Files taken in since the walk (`update`) have newer stamps: stat'ed again.
            if status is not None and not linked and path not in self._moved:
                stamps[path] = (status.st_ino, status.st_mtime_ns, status.st_size,
                                status.st_ctime_ns)
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
        """Records the hashes for the next run, if anything changed."""
        if not self.changed:
            return
        cache.write(self._files_path, self._identity, self._hashes)
        cache.write(self._summary_path, self._identity,
                    {"stamps": self._stamps, "digest": self.digest, "taken": self.taken})


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
        # nothing): frozen, they are left out. The last run's, no longer used, go back to it.
        gc.unfreeze()
        with reading(self._check.for_loaders()):
            loaded, evaluation, self.resumed = memo.evaluate(inputs, now, self._check)
        gc.freeze()
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
