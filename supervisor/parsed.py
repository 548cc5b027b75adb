"""Parsed and checked values of unchanged input files, kept in the cache between runs.

Each reader (inventory, world, rules) keeps its cache of one input root: for every file it
read and found valid, the file's stamp and the value it gave. The next run takes the value of
any file whose stamp is unchanged (and was trusted, see `cache.trusted`) instead of reading,
parsing and checking the file again. Files with problems are never cached: their problems are
found, with lines and columns, by reading them again.

A reader may split its cache in shards, by the name of the directory holding each file (the
inventory: by node). A shard's file is read only when one of its files is first asked for, so a
reader that needs a few nodes reads a few shards (`inventory.inventory_part`), and a run after
one file changed writes one shard, not every value of the inventory.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

from supervisor import cache
from supervisor.cache import Stamp
from supervisor.limits import current
from supervisor.manifest import drop_unless_read_as, known_stamp, walked

MISSING: Any = object()


class Parsed:
    """One reader's cache for one input root: `get` before reading a file, `put` after
    checking it, `save` at the end. In `shards` files, and an index, where needed, of the
    checks that passed (`passed_before`) and of the shards that hold entries."""

    def __init__(self, kind: str, root: str, shards: int = 1) -> None:
        self._kind, self._scope, self._shards = kind, os.path.abspath(root), shards
        # Named as they are needed: a run asking for a few shards builds no 64 paths.
        self._paths: dict[int, Path | None] = {}
        self._on = cache.directory() is not None
        self._identity = cache.identity(current()) if self._on else ""
        self._old: list[dict[str, Any] | None] = [None] * shards  # each shard's, once read
        self._index: dict[str, Any] | None = None
        self._new: list[dict[str, list[Any]]] = [{} for _ in range(shards)]
        self._passed: list[str] = []
        self._pending: dict[str, Stamp] = {}
        self._changed: set[int] = set()  # shards given new values
        self._missed = False  # a file was read, not taken from the cache
        # A stamp the walk saw, or bytes the digest check read, vouch for nothing later than
        # the walk's start: entries kept in this run are kept as of then.
        reading = walked()
        self._taken = min(reading.taken, cache.now_ns()) if reading else cache.now_ns()

    def get(self, path: str) -> Any:
        """The value `path` gave when last read, or MISSING if it may have changed since."""
        if not self._on:
            return MISSING
        stamp = known_stamp(path)
        if stamp is None:
            self._missed = True
            return MISSING
        shard = self._shard(path)
        entry: Any = self._entries(shard).get(path)
        if _fits(entry, stamp):
            self._new[shard][path] = entry
            return entry[5]
        self._pending[path] = stamp
        self._missed = True
        drop_unless_read_as(path, stamp)  # its value is kept under `stamp`: so its bytes
        return MISSING

    def kept(self, path: str, stamp: Stamp) -> Any:
        """The value kept for `path` read at `stamp`, or MISSING; for a reader of a few files
        that saves nothing (nothing is noted for `save` or `passed_before`)."""
        entry: Any = self._entries(self._shard(path)).get(path)
        return entry[5] if _fits(entry, stamp) else MISSING

    def unusable(self, path: str) -> None:
        """The value `get` gave for `path` is not one this reader can use: `path` is read again,
        and its `put` replaces the entry."""
        entry = self._new[self._shard(path)].pop(path, None)
        if entry is not None:
            self._pending[path] = (entry[0], entry[1], entry[2], entry[3])
            self._missed = True

    def put(self, path: str, value: Any) -> None:
        """`path` (asked for with `get`) was read and found valid: it gave `value`."""
        stamp = self._pending.pop(path, None)
        if stamp is not None:
            shard = self._shard(path)
            self._new[shard][path] = [*stamp, self._taken, value]
            self._changed.add(shard)

    def passed_before(self, check: str) -> bool:
        """Whether `check`, a check over all the files together (the inventory's dependencies,
        say), passed on exactly these files: every one taken from the cache, none added or
        removed since it passed. Its result would be the same: it need not run.

        The mark says which files it passed on (a digest of their paths and stamps), not just
        that it passed: the shards are written one by one, and a run stopped between two must
        not leave a mark that vouches for other files. And a file read in this run, not taken
        from the cache, may hold what the mark never saw under the very same stamp (rewritten
        within the clock's grain: `cache.trusted`)."""
        return (self._on and not self._missed
                and self._marks().get(check) == self._vouched())

    def passed(self, check: str) -> None:
        """`check` passed on the files read in this run (and kept, with `save`)."""
        self._passed.append(check)

    def save(self) -> None:
        """Writes the shards whose entries changed, or lost some: a shard none of whose files
        was asked for lost them all (a save follows a load of every file), and its file goes.
        Then the index, if it changed: the checks that passed, and which shards hold entries,
        so that the next save removes only files that are there. (A run stopped before the
        index is written may leave a shard file that no index names: its entries vouch for
        their own stamps only, and it is overwritten once it holds entries again.)"""
        if not self._on:
            return
        sharded = self._shards > 1
        index = self._recorded() if sharded or self._passed else {}
        listed = index.get("shards") if sharded else [0]
        for shard, old in enumerate(self._old):
            new = self._new[shard]
            if old is None:
                # Not known (a first run, an index lost): every one that may be there.
                if not isinstance(listed, list) or shard in listed:
                    cache.remove(self._path(shard))
            elif shard in self._changed or len(new) != len(old):
                cache.write(self._path(shard), self._identity, {"files": new})
        kept: dict[str, Any] = {"passed": dict.fromkeys(sorted(self._passed), self._vouched())
                                if self._passed else {}}
        if sharded:
            kept["shards"] = [shard for shard, new in enumerate(self._new) if new]
        if (sharded or self._passed) and kept != index:
            cache.write(self._index_path(), self._identity, kept)

    def _path(self, shard: int) -> Path | None:
        if shard not in self._paths:
            kind = self._kind if self._shards == 1 else f"{self._kind}-{shard:02d}"
            self._paths[shard] = cache.cache_path(kind, self._scope)
        return self._paths[shard]

    def _index_path(self) -> Path | None:
        return cache.cache_path(f"{self._kind}-index", self._scope)

    def _entries(self, shard: int) -> dict[str, Any]:
        """The shard's entries as last kept, read from its file the first time."""
        old = self._old[shard]
        if old is None:
            recorded = cache.read(self._path(shard), self._identity) or {}
            files = recorded.get("files")
            old = self._old[shard] = files if isinstance(files, dict) else {}
        return old

    def _recorded(self) -> dict[str, Any]:
        """The index as last written."""
        if self._index is None:
            self._index = cache.read(self._index_path(), self._identity) or {}
        return self._index

    def _marks(self) -> dict[str, Any]:
        """The checks that passed, each with the digest of the entries it passed on."""
        marks = self._recorded().get("passed")
        return marks if isinstance(marks, dict) else {}

    def _shard(self, path: str) -> int:
        if self._shards == 1:
            return 0
        folder = path.rpartition("/")[0].rpartition("/")[2]
        return zlib.crc32(folder.encode("utf-8", "surrogateescape")) % self._shards

    def _vouched(self) -> str:
        """A digest of the entries kept in this run: every path with its stamp (which vouches
        for its value, see `_fits`), in path order. (Against a run stopped half way, not
        against whoever can write the cache: they could write the marks too. Two checksums:
        no hash library to load.)"""
        rows = sorted(f"{path}\0{entry[0]}\0{entry[1]}\0{entry[2]}\0{entry[3]}"
                      for new in self._new for path, entry in new.items())
        data = "\n".join(rows).encode("utf-8", "surrogateescape")
        return f"{len(rows)}:{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def _fits(entry: Any, stamp: Stamp) -> bool:
    """An entry kept under `stamp`, in the shape written here, that the stamp vouches for."""
    # Every reader caches a mapping (rules: a list); anything else was not written here.
    # (Tested inline: a hundred thousand files pass here on every run.)
    return (type(entry) is list and len(entry) == 6 and entry[0] == stamp[0]
            and entry[1] == stamp[1] and entry[2] == stamp[2] and entry[3] == stamp[3]
            and type(entry[4]) is int and cache.trusted(stamp, entry[4])
            and type(entry[5]) in (dict, list))
