"""Parsed and checked values of unchanged input files, kept in the cache between runs.

Each reader (inventory, world, rules) keeps one cache file per input root: for every file it
read and found valid, the file's stamp and the value it gave. The next run takes the value of
any file whose stamp is unchanged (and was trusted, see `cache.trusted`) instead of reading,
parsing and checking the file again. Files with problems are never cached: their problems are
found, with lines and columns, by reading them again.
"""

from __future__ import annotations

import os
from typing import Any

from supervisor import cache
from supervisor.cache import Stamp
from supervisor.limits import current
from supervisor.manifest import drop_unless_read_as, known_stamp, walked

MISSING: Any = object()


class Parsed:
    """One reader's cache for one input root: `get` before reading a file, `put` after
    checking it, `save` at the end."""

    def __init__(self, kind: str, root: str) -> None:
        self._path = cache.cache_path(kind, os.path.abspath(root))
        self._identity = cache.identity(current()) if self._path is not None else ""
        recorded = cache.read(self._path, self._identity) or {}
        entries = recorded.get("files")
        self._old: dict[str, Any] = entries if isinstance(entries, dict) else {}
        marks = recorded.get("passed")
        self._old_passed: list[Any] = marks if isinstance(marks, list) else []
        self._new: dict[str, list[Any]] = {}
        self._passed: list[str] = []
        self._pending: dict[str, Stamp] = {}
        # A stamp the walk saw, or bytes the digest check read, vouch for nothing later than
        # the walk's start: entries kept in this run are kept as of then.
        reading = walked()
        self._taken = min(reading.taken, cache.now_ns()) if reading else cache.now_ns()
        self._changed = False
        self._missed = False

    def get(self, path: str) -> Any:
        """The value `path` gave when last read, or MISSING if it may have changed since."""
        if self._path is None:
            return MISSING
        stamp = known_stamp(path)
        if stamp is None:
            self._missed = True
            return MISSING
        entry = self._old.get(path)
        # Every reader caches a mapping (rules: a list); anything else was not written here.
        # (Tested inline: a hundred thousand files pass here on every run.)
        if (type(entry) is list and len(entry) == 6 and entry[0] == stamp[0]
                and entry[1] == stamp[1] and entry[2] == stamp[2] and entry[3] == stamp[3]
                and type(entry[4]) is int and cache.trusted(stamp, entry[4])
                and type(entry[5]) in (dict, list)):
            self._new[path] = entry
            return entry[5]
        self._pending[path] = stamp
        self._missed = True
        drop_unless_read_as(path, stamp)  # its value is kept under `stamp`: so its bytes
        return MISSING

    def unusable(self, path: str) -> None:
        """The value `get` gave for `path` is not one this reader can use: `path` is read again,
        and its `put` replaces the entry."""
        entry = self._new.pop(path, None)
        if entry is not None:
            self._pending[path] = (entry[0], entry[1], entry[2], entry[3])
            self._missed = True

    def put(self, path: str, value: Any) -> None:
        """`path` (asked for with `get`) was read and found valid: it gave `value`."""
        stamp = self._pending.pop(path, None)
        if stamp is not None:
            self._new[path] = [*stamp, self._taken, value]
            self._changed = True

    def passed_before(self, check: str) -> bool:
        """Whether `check`, a check over all the files together (the inventory's dependencies,
        say), passed on exactly these files: every one taken from the cache, none added or
        removed since it passed. Its result would be the same: it need not run."""
        return (self._path is not None and not self._missed and not self._changed
                and len(self._new) == len(self._old) and check in self._old_passed)

    def passed(self, check: str) -> None:
        """`check` passed on the files read in this run (and kept, with `save`)."""
        self._passed.append(check)

    def save(self) -> None:
        if self._path is not None and (self._changed or len(self._new) != len(self._old)
                                       or sorted(self._passed) != self._old_passed):
            cache.write(self._path, self._identity, {"files": self._new,
                                                     "passed": sorted(self._passed)})
