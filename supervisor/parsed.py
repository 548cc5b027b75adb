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
from supervisor.manifest import known_stamp

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
        self._new: dict[str, list[Any]] = {}
        self._pending: dict[str, Stamp] = {}
        self._taken = cache.now_ns()
        self._changed = False

    def get(self, path: str) -> Any:
        """The value `path` gave when last read, or MISSING if it may have changed since."""
        if self._path is None:
            return MISSING
        stamp = known_stamp(path)
        if stamp is None:
            return MISSING
        entry = self._old.get(path)
        # Every reader caches a mapping (rules: a list); anything else was not written here.
        if (isinstance(entry, list) and len(entry) == 6 and tuple(entry[:4]) == stamp
                and isinstance(entry[4], int) and cache.trusted(stamp, entry[4])
                and isinstance(entry[5], dict | list)):
            self._new[path] = entry
            return entry[5]
        self._pending[path] = stamp
        return MISSING

    def put(self, path: str, value: Any) -> None:
        """`path` (asked for with `get`) was read and found valid: it gave `value`."""
        stamp = self._pending.pop(path, None)
        if stamp is not None:
            self._new[path] = [*stamp, self._taken, value]
            self._changed = True

    def save(self) -> None:
        if self._path is not None and (self._changed or len(self._new) != len(self._old)):
            cache.write(self._path, self._identity, {"files": self._new})
