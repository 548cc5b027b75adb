"""Opening and replacing files safely in shared directories such as /tmp.

The default event log and checkpoint live in a world-writable directory, where another user can
plant a symlink or a file of their own. Here no path is followed through a symlink, new files
get owner-only modes, and a replacement is atomic and durable (temporary file in the same
directory, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from supervisor.errors import Problem, SupervisorError

MODE = 0o600


class UnsafeFileError(SupervisorError):
    """A state file is a symlink, or not ours, or cannot be written."""


def open_file(path: Path, flags: int, *, mode: int = MODE) -> int:
    """`os.open` that refuses symlinks and says so in words."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UnsafeFileError([Problem(str(path), message="is a symlink; refusing to follow "
                                           "it (remove it, or choose another path)")]) from None
        raise UnsafeFileError([Problem(str(path), message=f"cannot be opened: {error.strerror}")]
                              ) from None


def check_owner(path: Path, descriptor: int) -> None:
    """Refuses a file that another user owns: they could have planted its content."""
    owner = os.fstat(descriptor).st_uid
    if owner != os.geteuid():
        raise UnsafeFileError([Problem(str(path), message=f"is owned by uid {owner}, not by this "
                                       f"user (uid {os.geteuid()}); refusing to use it")])


@contextlib.contextmanager
def locked(path: Path) -> Iterator[int]:
    """An exclusive `flock` on `path` (created if needed), held for the block."""
    descriptor = open_file(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield descriptor
    finally:
        os.close(descriptor)  # closing releases the lock


def replace_atomically(path: Path, data: bytes) -> None:
    """Writes `data` to `path` so that a reader (or a crash) sees the old or the new file whole."""
    directory = path.parent
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by an earlier process with our pid that was killed
    descriptor = open_file(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    except OSError as error:
        os.close(descriptor)
        os.unlink(temporary)
        raise UnsafeFileError([Problem(str(path), message=f"cannot be written: {error.strerror}")]
                              ) from None
    os.close(descriptor)
    try:
        os.rename(temporary, path)
    except OSError as error:
        os.unlink(temporary)
        raise UnsafeFileError([Problem(str(path), message=f"cannot be replaced: {error.strerror}")]
                              ) from None
    sync_directory(directory)


def sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
