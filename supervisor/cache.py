"""The cache: what was read from unchanged input files, kept between runs.

Reading and checking a hundred thousand files is most of a cold `eval`; a file whose stamp
(inode, mtime_ns, size, ctime_ns) has not changed since it was last read has not changed
either, so its parsed and checked value can be reused. A stamp taken within `RACY_NS` of the
file's modification is never trusted: a file rewritten twice within one clock tick would keep
its stamp (git's "racily clean" entries).

The cache is only ever data: JSON, checked for shape and by a checksum over its body (CRC-32,
for a torn or damaged file: the file's owner and mode are what keep others out), written
atomically, owned by this user and private. A cache from another version of the program, its
schemas, its limits or Python is not used; a cache that is corrupt, foreign or unreadable is
ignored and rebuilt. Nothing in it is executed.

Where: `$SUPERVISOR_CACHE_DIR`, else systemd's `$CACHE_DIRECTORY` (`CacheDirectory=`), else
`$XDG_CACHE_HOME/homelab-supervisor`, else `~/.cache/homelab-supervisor`.
`SUPERVISOR_CACHE=off` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

Stamp = tuple[int, int, int, int]  # inode, mtime_ns, size, ctime_ns
FORMAT = 2  # 2: a CRC-32 instead of SHA-256, the identity unhashed
RACY_NS = 2_000_000_000  # coarse file systems keep whole or even two seconds
PACKAGE = Path(__file__).resolve().parent


def stamp_of(path: str) -> Stamp | None:
    """The stamp of a regular file at `path` (not followed if a symlink), else None."""
    try:
        status = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return stamp_from(status)


def stamp_from(status: os.stat_result) -> Stamp | None:
    if not stat.S_ISREG(status.st_mode):
        return None
    return (status.st_ino, status.st_mtime_ns, status.st_size, status.st_ctime_ns)


def trusted(stamp: Sequence[int], taken_ns: int) -> bool:
    """A stamp (`Stamp`'s fields) taken at `taken_ns` can vouch for the file's content later
    on."""
    return taken_ns - max(stamp[1], stamp[3]) > RACY_NS


_BYPASSED = [False]


@contextlib.contextmanager
def bypassed() -> Iterator[None]:
    """Inside the block the cache is off: nothing read from it, nothing written."""
    _BYPASSED.append(True)
    try:
        yield
    finally:
        _BYPASSED.pop()


def directory() -> Path | None:
    """Where the cache lives, or None when it is turned off."""
    if _BYPASSED[-1]:
        return None
    env = os.environ
    if env.get("SUPERVISOR_CACHE", "").lower() in ("off", "0", "no", "false"):
        return None
    if env.get("SUPERVISOR_CACHE_DIR"):
        return Path(env["SUPERVISOR_CACHE_DIR"])
    if env.get("CACHE_DIRECTORY"):
        return Path(env["CACHE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "homelab-supervisor"


def identity(limits: object) -> str:
    """What a cache is valid for: this program (its version and code), its schemas, the input
    limits in force and the Python that reads it. Stat-only, to keep start-up cheap, and once
    per process: the code running is the code that was imported. Kept whole, not hashed (a few
    kilobytes in each cache's first line), so that no two can be taken for each other and no
    hash library is loaded for it."""
    return _identity(repr(limits))


@functools.cache
def _identity(limits: str) -> str:
    from supervisor import __version__
    from supervisor.resources import data_dir

    parts: list[object] = [FORMAT, __version__, sys.version, limits]
    for folder in (PACKAGE, data_dir("schemas")):
        try:
            with os.scandir(folder) as entries:
                parts.extend(sorted(
                    (entry.name, entry.stat().st_mtime_ns, entry.stat().st_size)
                    for entry in entries if entry.name.endswith((".py", ".json"))))
        except OSError:
            continue
    return repr(parts)


def cache_path(kind: str, scope: str) -> Path | None:
    """The cache file for `kind` (inventory, world, rules, manifest) of the inputs at `scope`."""
    folder = directory()
    if folder is None:
        return None
    # A name only: every reader checks what it takes (paths, stamps), so two scopes sharing
    # one would only evict each other's entries.
    name = scope.encode("utf-8", "surrogateescape")
    return folder / f"{kind}-{zlib.crc32(name):08x}{zlib.adler32(name):08x}.json"


def read(path: Path | None, expected: str) -> dict[str, Any] | None:
    """The cache's entries, or None if there is none usable (missing, foreign, corrupt, stale)."""
    if path is None:
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        # Someone else's file, or one others may write, could have been planted.
        if (not stat.S_ISREG(status.st_mode) or status.st_uid != os.geteuid()
                or status.st_mode & 0o022):
            return None
        with os.fdopen(os.dup(descriptor), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    finally:
        os.close(descriptor)
    header, _, body = data.partition(b"\n")
    try:
        meta = json.loads(header)
        if (not isinstance(meta, dict) or meta.get("identity") != expected
                or meta.get("crc32") != zlib.crc32(body)):
            return None
        if meta.get("codec") == "orjson":
            import orjson

            entries = orjson.loads(body)
        else:
            entries = json.loads(body)
    except (ValueError, RecursionError):  # orjson.JSONDecodeError is a ValueError
        return None
    return entries if isinstance(entries, dict) else None


def write(path: Path | None, expected: str, entries: dict[str, Any]) -> None:
    """Replaces the cache atomically; a cache that cannot be written is simply not kept."""
    if path is None:
        return
    body, codec = _encode(entries)
    header = json.dumps({"identity": expected, "crc32": zlib.crc32(body), "codec": codec})
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(header.encode() + b"\n" + body)
        os.replace(temporary, path)
    except (OSError, ValueError):
        with contextlib.suppress(OSError):
            os.unlink(temporary)


def remove(path: Path | None) -> None:
    """Removes a cache file no longer needed; one that cannot be removed simply stays."""
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _encode(entries: dict[str, Any]) -> tuple[bytes, str]:
    """orjson reads a big cache several times faster than json. It cannot hold what it would
    read back differently (integers beyond 64 bits become floats, lone surrogates): then the
    cache is written, and read, with json."""
    import orjson

    try:
        return orjson.dumps(entries), "orjson"
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(entries, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8", "surrogatepass"), "json"


def now_ns() -> int:
    return time.time_ns()
