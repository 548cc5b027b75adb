"""The world's records as last read, kept per directory between runs.

A world of a hundred thousand services is a thousand directories, and a run after one record
changed finds all but one of them as they were. So the cache keeps, per directory, what it
held (every entry's name, in the directory's own order, and every file's stamp) and the records
it gave; a directory found with the same names and stamps, all trusted (see `cache.trusted`),
gives the same records, taken whole without a look at each file. In a directory that changed,
each file whose stamp is unchanged still keeps its record, as `parsed.py` does it for the
other inputs. A directory holding links or subdirectories is never taken whole: those are
problems to report, and only reading it again finds them.

`run` has just walked every input to see whether anything changed (supervisor/walk.py); its
listings and statuses are used here rather than listing and stat'ing the world again. A
directory the walk could not list, or whose files it saw before they were taken in since
(`Check.update`), is listed again.

The cache is split in `SHARDS` files by directory, so that a run rewrites only the shards whose
directories changed, not every record of the world, and a run that needs a few directories
(`load_world_part`) reads a few shards. Sixty-four, not sixteen: at 100,000 services a node's
shard is 0.2 MB (1 ms to read) rather than 0.9 MB (5 ms); a whole load takes as long either way.
"""

from __future__ import annotations

import binascii
import os
import zlib
from array import array
from typing import Any, NamedTuple

from supervisor import cache
from supervisor.cache import Stamp
from supervisor.limits import current
from supervisor.manifest import walked

MISSING: Any = object()
SHARDS = 64


class Scan(NamedTuple):
    """One directory as found in this run: every entry but subdirectories, in the directory's
    order, and their stamps, packed (zeros where there is no regular file)."""

    names: list[str]
    numbers: array[int]
    clean: bool  # no links, no subdirectories

    def token(self) -> str:
        return binascii.b2a_base64(self.numbers.tobytes(), newline=False).decode("ascii")

    def newest(self) -> int:
        """The newest mtime or ctime of its files."""
        numbers = self.numbers
        return max(max(numbers[1::4], default=0), max(numbers[3::4], default=0))

    def stamp(self, name: str, positions: dict[str, int]) -> Stamp | None:
        at = 4 * positions[name]
        found = self.numbers[at:at + 4]
        return (found[0], found[1], found[2], found[3]) if found[0] else None


class View(NamedTuple):
    """What this run's walk saw of the world."""

    scans: dict[str, Scan]  # the clean directories, by path relative to the world
    taken: int  # when the walk began
    world: os.stat_result | None  # world.json, if the walk saw it as a regular file


def walk_view(base: str) -> View | None:
    """The walk's listings of the world at `base`, if this run walked it whole."""
    reading = walked()
    if reading is None or reading.listing is None:
        return None
    listing = reading.listing
    try:
        root = listing.roots.index(base)
    except ValueError:
        return None
    inside = base + "/"
    if any(path == base or path.startswith(inside) for path in listing.unlisted):
        return None
    directories = [directory for directory in listing.directories if directory.root == root]
    parents = {directory.relative.rpartition("/")[0] for directory in directories
               if directory.relative}
    stale = {os.path.dirname(path)[len(base):] for path in reading.moved
             if path.startswith(inside)}
    links = set(listing.links)
    statuses = listing.statuses
    scans: dict[str, Scan] = {}
    world: os.stat_result | None = None
    for directory in directories:
        _, relative, names, first = directory
        end = first + len(names)
        linked = bool(links) and not links.isdisjoint(range(first, end))
        if relative == "":
            if "world.json" in names:
                position = first + names.index("world.json")
                found = statuses[position]
                if position not in links and isinstance(found, os.stat_result):
                    world = found
            continue
        if linked or relative in parents or relative in stale:
            continue
        scans[relative] = Scan(names, listing.stamps_in(directory), True)
    return View(scans, reading.taken, world)


class Kept:
    """The world's cache: `whole` or `earlier` before reading a directory or a file, `keep`
    after reading one, `save` at the end.

    A shard file is read when a directory in it is first asked for: a run that reads a few
    directories (`load_world_part`) reads a few shards, not all of them."""

    def __init__(self, root: str, taken: int) -> None:
        scope = os.path.abspath(root)
        self._paths = [cache.cache_path(f"world-{shard:02d}", scope) for shard in range(SHARDS)]
        self._identity = cache.identity(current()) if self._paths[0] is not None else ""
        self._taken = taken
        self._old: list[dict[str, Any] | None] = [None] * SHARDS  # by shard, once read
        self._new: dict[str, list[Any]] = {}
        self._changed: set[int] = set()
        self._stamps: dict[str, tuple[dict[str, int], array[int]] | None] = {}

    def _shard(self, shard: int) -> dict[str, Any]:
        """The directories kept in a shard file, read on first use."""
        found = self._old[shard]
        if found is None:
            recorded = cache.read(self._paths[shard], self._identity) or {}
            directories = recorded.get("directories")
            found = self._old[shard] = directories if isinstance(directories, dict) else {}
        return found

    def _entry(self, relative: str) -> Any:
        return self._shard(_shard(relative)).get(relative)

    def whole(self, relative: str, scan: Scan) -> dict[str, Any] | None:
        """The records of the directory at `relative`, if it holds just what it did when they
        were kept (and that was long enough after its files last changed to vouch for them)."""
        entry: Any = self._entry(relative)
        # (Problems with the directory itself, links and subdirectories, are found by listing
        # it, not here: a directory with those is never in the walk's view, see `walk_view`.)
        if not (_valid(entry) and entry[1] is True and entry[2] == scan.names
                and entry[3] == scan.token()
                and cache.trusted((0, scan.newest(), 0, 0), entry[0])):
            return None
        records = entry[4]
        if not all(type(value) is dict for value in records.values()):
            return None
        self._new[relative] = entry
        return records  # type: ignore[no-any-return]

    def earlier(self, relative: str, name: str, key: str, stamp: Stamp | None) -> Any:
        """The record of the file `name` in `relative` when last read, or MISSING if it may
        have changed since."""
        if stamp is None:
            return MISSING
        if relative not in self._stamps:
            self._stamps[relative] = _recorded(self._entry(relative))
        recorded = self._stamps[relative]
        if recorded is None or name not in recorded[0]:
            return MISSING
        entry: list[Any] = self._entry(relative)
        at = 4 * recorded[0][name]
        value = entry[4].get(key, MISSING)
        if (tuple(recorded[1][at:at + 4]) == stamp and cache.trusted(stamp, entry[0])
                and type(value) is dict):
            return value
        return MISSING

    def keep(self, relative: str, scan: Scan, records: dict[str, Any], clean: bool) -> None:
        """The directory at `relative`, found as `scan`, gave `records` (all it holds if
        `clean`: no file in it had a problem)."""
        self._new[relative] = [self._taken, clean and scan.clean, scan.names, scan.token(),
                               records]
        self._changed.add(_shard(relative))

    def save(self, *, complete: bool = True) -> None:
        """`complete`: every directory of the world was asked for, and those not asked for
        are gone: their entries go too. Otherwise (a part of the world read) the shards
        holding a directory kept anew are written with their other directories' entries as
        they were; no other shard is touched."""
        if self._paths[0] is None:
            return
        shards: list[dict[str, Any]] = [{} for _ in range(SHARDS)]
        for relative, entry in self._new.items():
            shards[_shard(relative)][relative] = entry
        if not complete:
            for shard in sorted(self._changed):
                cache.write(self._paths[shard], self._identity,
                            {"directories": {**self._shard(shard), **shards[shard]}})
            return
        for shard in range(SHARDS):
            old = self._old[shard]
            if old is None and shard not in self._changed:
                # Not one of its directories was asked for: none of them is still there.
                cache.remove(self._paths[shard])
            elif shard in self._changed or (old is not None and old.keys() - shards[shard]):
                cache.write(self._paths[shard], self._identity, {"directories": shards[shard]})


def _valid(entry: Any) -> bool:
    return (type(entry) is list and len(entry) == 5 and type(entry[0]) is int
            and type(entry[1]) is bool and type(entry[2]) is list and type(entry[3]) is str
            and type(entry[4]) is dict)


def _recorded(entry: Any) -> tuple[dict[str, int], array[int]] | None:
    """Where each name's stamp is in a kept directory, and the stamps."""
    if not _valid(entry):
        return None
    try:
        numbers = array("q", binascii.a2b_base64(entry[3]))
    except (binascii.Error, ValueError):
        return None
    names = entry[2]
    if len(numbers) != 4 * len(names) or not all(type(name) is str for name in names):
        return None
    return {name: position for position, name in enumerate(names)}, numbers


def _shard(relative: str) -> int:
    return zlib.crc32(relative.encode("utf-8", "surrogateescape")) % SHARDS
