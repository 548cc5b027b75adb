"""Opening and replacing the state files (log, checkpoint, lock) safely in shared directories.

The default event log and checkpoint live in /tmp, where another user can plant a symlink, a
FIFO, a hard link to a file of ours, or a file of their own that they can read or hold locked.
So a state file is used only when it is a regular file with one link, owned by this user or
root, reached without a symlink, in a directory that is not a symlink and that others cannot
write to unless it is sticky (as ssh's StrictModes checks a home directory). New files get
owner-only modes; a replacement is atomic and durable (an unpredictable temporary file in the
same directory, fsync, rename, fsync of the directory); no wait for a lock is unbounded.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from supervisor.errors import Problem, SupervisorError

MODE = 0o600
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK:
          "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


class UnsafeFileError(SupervisorError):
    """A state file is a symlink, or not ours, or cannot be written."""


class LockTimeout(UnsafeFileError):
    """Another process held a lock for longer than we wait."""


def refuse(path: Path | str, message: str) -> UnsafeFileError:
    return UnsafeFileError([Problem(str(path), message=message)])


def check_directory(directory: Path) -> None:
    """Refuses to keep state in a directory that another user could swap files in.

    A symlink is refused when another user owns it (they could point it elsewhere at any
    time); one of root's or ours is followed and its target judged by the same rules, since
    systemd makes a `DynamicUser=` unit's state directory exactly such a symlink
    (/var/lib/NAME -> private/NAME).
    """
    try:
        status = os.lstat(directory)
    except OSError as error:
        raise refuse(directory, f"cannot be used for state files: {error.strerror}") from None
    if stat.S_ISLNK(status.st_mode):
        if status.st_uid not in (0, os.geteuid()):
            raise refuse(directory, f"is a symlink owned by uid {status.st_uid}, who could point "
                         "it elsewhere; refusing to keep state files under it (name the "
                         "directory it points to instead)")
        _check_real_directory(directory.parent)  # who may replace the link
        try:
            status = os.stat(directory)
        except OSError as error:
            raise refuse(directory, f"cannot be used for state files: {error.strerror}"
                         ) from None
    _check_real_directory(directory, status)


def _check_real_directory(directory: Path, status: os.stat_result | None = None) -> None:
    if status is None:
        try:
            status = os.stat(directory)
        except OSError as error:
            raise refuse(directory, f"cannot be used for state files: {error.strerror}"
                         ) from None
    if not stat.S_ISDIR(status.st_mode):
        raise refuse(directory, "is not a directory")
    if status.st_mode & stat.S_IWOTH and not status.st_mode & stat.S_ISVTX:
        raise refuse(directory, "is writable by other users and not sticky, so they could "
                     "replace the state files in it; run `chmod o-w` (or `chmod +t`) on it, "
                     "or choose another directory")
    if status.st_uid not in (0, os.geteuid()):
        raise refuse(directory, f"is owned by uid {status.st_uid}, not by this user "
                     f"(uid {os.geteuid()}) or root, who could replace the state files in it; "
                     "choose another directory")


def open_file(path: Path, flags: int, *, mode: int = MODE) -> int:
    """`os.open` for a state file: checks its directory, never follows a symlink, never waits
    on a FIFO, and refuses anything but a regular file of ours with a single link."""
    if not str(path):
        raise refuse("''", "names no file")
    check_directory(path.parent)
    try:
        descriptor = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as error:
        raise _open_error(path, error) from None
    try:
        check_file(path, descriptor)
    except UnsafeFileError:
        os.close(descriptor)
        raise
    return descriptor


def _open_error(path: Path, error: OSError) -> UnsafeFileError:
    if error.errno == errno.ELOOP:
        return refuse(path, "is a symlink; refusing to follow it (remove it, or choose another "
                      "path)")
    if error.errno == errno.EISDIR:
        return refuse(path, "is a directory, not a file; choose a file's path")
    if error.errno == errno.ENXIO:
        return refuse(path, "is not a regular file (a FIFO or a device); remove it, or choose "
                      "another path")
    if error.errno == errno.ENOENT:
        return refuse(path, f"cannot be created: {path.parent} does not exist")
    return refuse(path, f"cannot be opened: {error.strerror}")


def check_file(path: Path, descriptor: int) -> None:
    status = os.fstat(descriptor)
    kind = stat.S_IFMT(status.st_mode)
    if kind == stat.S_IFDIR:
        raise refuse(path, "is a directory, not a file; choose a file's path")
    if kind in (stat.S_IFCHR, stat.S_IFBLK):
        raise refuse(path, f"is {_KINDS[kind]}, not a regular file; choose a file's path")
    if kind != stat.S_IFREG:
        raise refuse(path, f"is {_KINDS.get(kind, 'not a regular file')}, not a regular file; "
                     "remove it, or choose another path")
    if status.st_uid not in (0, os.geteuid()):
        raise refuse(path, f"is owned by uid {status.st_uid}, not by this user "
                     f"(uid {os.geteuid()}) or root; refusing to use it: choose another path, "
                     "or have its owner remove it")
    if status.st_nlink > 1:
        raise refuse(path, f"has {status.st_nlink} hard links, so it can be read or changed "
                     "under another name; remove it (the supervisor creates a new one), or "
                     "choose another path")


def wait_for_lock(path: Path, descriptor: int, kind: int, timeout: float,
                  cancelled: Callable[[], bool] = lambda: False) -> None:
    """`flock`, waiting at most `timeout` seconds (and not at all once `cancelled`)."""
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        try:
            fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        if cancelled():
            raise LockTimeout([Problem(str(path), message="stopped while waiting for its lock")])
        if time.monotonic() >= deadline:
            raise LockTimeout([Problem(str(path), message=(
                f"still locked by another process after {timeout:g} s: another run may be "
                f"stuck, or another program holds it (`fuser -v {path}` shows which); "
                "--lock-timeout sets the wait"))])
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


@contextlib.contextmanager
def locked(path: Path, timeout: float = 30.0,
           cancelled: Callable[[], bool] = lambda: False) -> Iterator[int]:
    """An exclusive `flock` on `path` (created if needed), held for the block."""
    descriptor = open_file(path, os.O_RDWR | os.O_CREAT)
    try:
        wait_for_lock(path, descriptor, fcntl.LOCK_EX, timeout, cancelled)
        yield descriptor
    finally:
        os.close(descriptor)  # closing releases the lock


def write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def replace_atomically(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that a reader (or a crash) sees the old or the new file whole.

    The temporary name is unpredictable (`mkstemp`): a file planted at a predictable name could
    not then be written through, or make every run fail.
    """
    directory = path.parent
    check_directory(directory)
    try:
        descriptor, name = tempfile.mkstemp(prefix=_temporary_prefix(path), suffix=".tmp",
                                            dir=directory)
    except OSError as error:
        raise refuse(path, f"cannot be written: {error.strerror}") from None
    try:
        try:
            write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.rename(name, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise refuse(path, f"cannot be written: {error.strerror}") from None
    sync_directory(directory)


def remove_leftovers(path: Path) -> list[str]:
    """Removes the temporary files that runs killed while replacing `path` left behind.

    Call it holding the lock that serialises those runs. Only our own regular files go.
    """
    prefix = _temporary_prefix(path)
    removed: list[str] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".tmp")):
            continue
        with contextlib.suppress(OSError):
            status = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(status.st_mode) and status.st_uid == os.geteuid():
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def sync_directory(directory: Path) -> None:
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as error:
        raise refuse(directory, f"cannot be synced to disk: {error.strerror}") from None
