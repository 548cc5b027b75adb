"""Every file under the inputs, stat'ed once: all an unchanged `run` does.

At 100,000 services that is 130,000 files, and the walk is the whole of an unchanged run, so it
does as little per file as it can. Each directory is opened once and its files are stat'ed
relative to it (`fstatat`), which spares the kernel looking up the whole path again for every
file. Nothing is built per file but the status itself: the names stay in their directory's
list, and the stamps are hashed in one pass at the end, in C (`Listing.stamps`). The walk order
is the directories' own, which is stable while they are unchanged; `Listing.walked` sorts.
"""

from __future__ import annotations

import bisect
import itertools
import operator
import os
import stat
from array import array
from collections.abc import Sequence
from typing import NamedTuple

# (root, path relative to it (the path is the two joined), status of the file or of what a link
# leads to, whether it is a link)
Walked = tuple[str, str, os.stat_result | None, bool]

_FORMAT, _REGULAR = 0o170000, stat.S_IFREG
_STAMP = operator.attrgetter("st_ino", "st_mtime_ns", "st_size", "st_ctime_ns")
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# Below a root, a directory swapped for a link between the listing and the open is not followed.
_BELOW = _DIRECTORY | os.O_NOFOLLOW
_BY_DESCRIPTOR = os.scandir in os.supports_fd


class _Absent:
    """The stamp of what is no regular file, nor a link to one (no real file has inode 0)."""

    st_ino = st_mtime_ns = st_size = st_ctime_ns = 0


ABSENT = _Absent()


def pack(statuses: Sequence[os.stat_result | _Absent]) -> array[int]:
    """The files' stamps, four numbers each, in one array (zeros for `ABSENT`)."""
    return array("q", itertools.chain.from_iterable(map(_STAMP, statuses)))


def _in_order(directory: Directory) -> tuple[int, list[str]]:
    """Where a directory comes in the digest: by root, then pre-order, children by name."""
    return directory.root, directory.relative.split("/")


class Directory(NamedTuple):
    """One directory as listed (or a file root): the files' names, in the order the directory
    gave them, and where their statuses begin in `Listing.statuses`."""

    root: int  # which root, by position
    relative: str  # "" for the root itself, else "/a/b"
    names: list[str]  # a file root has one, ""
    first: int


class Listing:
    """What a walk found: per directory (or file root), its root, its path relative to the root
    and its files' names; per file, in the same order, its status."""

    def __init__(self, roots: list[str]) -> None:
        self.roots = roots
        self.directories: list[Directory] = []
        self.statuses: list[os.stat_result | _Absent] = []
        self.links: list[int] = []  # which files (by position) are links
        # Directories found but not listed (unreadable, or gone meanwhile): a loader taking its
        # listings from here must not take them as empty.
        self.unlisted: list[str] = []
        self._packed: array[int] | None = None

    def stamps(self) -> tuple[bytes, int]:
        """A hash of every file's path and stamp, and the newest ctime of a regular file (any
        change to a file moves its ctime, whatever its mtime is set to).

        Equal hashes mean the same files with the same stamps. Files are taken in the order
        their directories list them, which is the same while a directory is unchanged; when
        it changed, so did a stamp."""
        import hashlib  # here: `eval` walks nothing, and OpenSSL is a twentieth of its start

        digest = hashlib.sha256(repr(self.roots).encode("utf-8", "surrogateescape"))
        for root, relative, names, _ in self.directories:
            # Names hold no "/": a directory's "/..." cannot be mistaken for one.
            digest.update("\0".join(["", str(root), relative, *names]).encode(
                "utf-8", "surrogateescape"))
        numbers = self._numbers()
        digest.update(numbers.tobytes())
        digest.update(array("q", self.links).tobytes())
        return digest.digest(), max(numbers[3::4], default=0)

    def _numbers(self) -> array[int]:
        """Every file's stamp, four numbers each, in the walk's order; packed once."""
        if self._packed is None:
            self._packed = pack(self.statuses)
        return self._packed

    def stamps_in(self, directory: Directory) -> array[int]:
        """The stamps of a directory's files, packed (the world's loader compares them with
        its cache, records.py)."""
        return self._numbers()[4 * directory.first:4 * (directory.first + len(directory.names))]

    def by_directory(self) -> list[tuple[Directory, bytes, int]]:
        """Each directory (or file root) with a hash of its files' names and stamps, and the
        newest mtime or ctime among them; in the order `walked` gives the files."""
        import hashlib

        links = self.links
        found = []
        for directory in self.directories:
            names, first = directory.names, directory.first
            end = first + len(names)
            numbers = self.stamps_in(directory)
            linked = array("q", (link - first for link in links[
                bisect.bisect_left(links, first):bisect.bisect_left(links, end)]))
            digest = hashlib.sha256("\0".join(names).encode("utf-8", "surrogateescape"))
            digest.update(numbers.tobytes())
            digest.update(linked.tobytes())
            found.append((directory, digest.digest(),
                          max(max(numbers[1::4], default=0), max(numbers[3::4], default=0))))
        found.sort(key=lambda entry: _in_order(entry[0]))
        return found

    def walked(self) -> list[Walked]:
        """Every file, in a stable order (a directory's files in name order, then its
        subdirectories, each in turn): root, relative path, status (None: no regular file),
        whether a link."""
        links = set(self.links)
        walked: list[Walked] = []
        for root, relative, names, first in sorted(self.directories, key=_in_order):
            base = self.roots[root]
            for name, position in sorted(zip(names, range(first, first + len(names)), strict=True)):
                status = self.statuses[position]
                walked.append((base, f"{relative}/{name}" if name else relative,
                               status if isinstance(status, os.stat_result) else None,
                               position in links))
        return walked


def walk(roots: list[str]) -> Listing:
    """Every file under `roots` (links to directories are not followed; links to files are, as
    the loaders follow them: rule files may be links)."""
    listing = Listing(roots)
    for position, root in enumerate(roots):
        if os.path.isfile(root):
            status = follow(root)
            if status is not None:
                listing.directories.append(Directory(position, "", [""], len(listing.statuses)))
                listing.statuses.append(status if _regular(status) else ABSENT)
            continue
        pending = [root]
        while pending:
            pending.extend(_list(position, root, pending.pop(), listing))
    return listing


def _list(position: int, root: str, directory: str, listing: Listing) -> list[str]:
    """Takes in `directory`'s files; returns its subdirectories."""
    names: list[str] = []
    statuses, below = listing.statuses, []
    first = len(statuses)
    descriptor = -1
    try:
        if _BY_DESCRIPTOR:
            descriptor = os.open(directory, _DIRECTORY if directory == root else _BELOW)
        # Stat'ed through the descriptor, each entry is one name for the kernel to look up.
        with os.scandir(descriptor if descriptor >= 0 else directory) as scanner:
            for entry in scanner:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        below.append(f"{directory}/{entry.name}")
                        continue
                    found = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since the listing
                names.append(entry.name)
                if found.st_mode & _FORMAT == _REGULAR:
                    statuses.append(found)
                else:
                    statuses.append(_irregular(f"{directory}/{entry.name}", found, listing))
    except OSError:
        del statuses[first:], names[:]  # as if it were not there
        listing.links[:] = [link for link in listing.links if link < first]
        listing.unlisted.append(directory)
        return []
    finally:
        if descriptor >= 0:
            os.close(descriptor)
    listing.directories.append(Directory(position, directory[len(root):], names, first))
    return below


def _irregular(path: str, found: os.stat_result, listing: Listing) -> os.stat_result | _Absent:
    """The status of the regular file a link leads to (rule files may be links, and loaders
    follow those), else absent."""
    if not stat.S_ISLNK(found.st_mode):
        return ABSENT
    listing.links.append(len(listing.statuses))
    followed = follow(path)
    return followed if followed is not None and _regular(followed) else ABSENT


def _regular(status: os.stat_result) -> bool:
    return stat.S_ISREG(status.st_mode)


def follow(path: str) -> os.stat_result | None:
    """What a link points to: rule files may be links, and loaders follow those."""
    try:
        return os.stat(path)
    except OSError:
        return None
