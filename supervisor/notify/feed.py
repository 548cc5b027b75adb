"""Reading the event log from where the notifier left off, read-only, across rotations.

The position is (device, inode, offset, head): `head` is the file's first bytes, so that a log
truncated and written again past our offset (logrotate's `copytruncate` followed by a busy
writer) is still recognised as a new file. A new inode, a file shorter than our offset or a
different head means the log was rotated: it is read again from its start, where the
supervisor writes a resync of everything open. In `--follow` mode the descriptor stays open, so
the lines a renamed-away log received after our last read are still read before switching.

Only whole lines are consumed; the reads take a shared `flock`, as the writer appends under an
exclusive one, so a run's lines arrive together.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.errors import Problem
from supervisor.safefile import UnsafeFileError

HEAD = 256  # bytes compared to recognise a rewritten file
_CHUNK = 1 << 20


@dataclass
class Position:
    device: int = 0
    inode: int = 0
    offset: int = 0
    head: bytes = b""

    def to_json(self) -> dict[str, Any]:
        return {"device": self.device, "inode": self.inode, "offset": self.offset,
                "head": self.head.hex()}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Position:
        return cls(int(value["device"]), int(value["inode"]), int(value["offset"]),
                   bytes.fromhex(value["head"]))


@dataclass
class Read:
    lines: list[dict[str, Any]]
    rotated: bool  # the lines come from the start of a new file
    skipped: int  # lines that were not JSON objects


class Feed:
    """The log at `path`, from `position` on."""

    def __init__(self, path: Path, position: Position, *, keep_open: bool = False) -> None:
        self.path = path
        self.position = position
        self.keep_open = keep_open
        self._descriptor: int | None = None

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def read(self) -> list[Read]:
        """What was appended since the last read: first the rest of a file we still hold open
        and that was rotated away since, then the current file."""
        reads = []
        descriptor = self._descriptor
        if descriptor is not None and not self._is_current(descriptor):
            reads.append(self._read_from(descriptor, rotated=False))
            self.close()
            descriptor = None
        if descriptor is None:
            descriptor = self._open()
        if descriptor is not None:
            rotated = self._rotated(descriptor)
            if rotated:
                self.position = Position(*_identity(descriptor), offset=0, head=b"")
            reads.append(self._read_from(descriptor, rotated=rotated))
            if self.keep_open:
                self._descriptor = descriptor
            elif descriptor != self._descriptor:
                os.close(descriptor)
        return [read for read in reads if read.lines or read.rotated or read.skipped]

    def _open(self) -> int | None:
        try:
            # Non-blocking: a FIFO planted at the log's path must not hang the notifier.
            descriptor = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
                                 | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # rotated away and not created again yet: nothing to read
        except OSError as error:
            message = ("is a symlink; refusing to follow it" if error.errno == errno.ELOOP
                       else f"cannot be read: {error.strerror}")
            raise UnsafeFileError([Problem(str(self.path), message=message)]) from None
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            os.close(descriptor)
            raise UnsafeFileError([Problem(str(self.path), message="is not a regular file; "
                                           "name the supervisor's event log")])
        return descriptor

    def _is_current(self, descriptor: int) -> bool:
        try:
            status = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (status.st_dev, status.st_ino) == _identity(descriptor)

    def _rotated(self, descriptor: int) -> bool:
        position = self.position
        if (position.device, position.inode) != _identity(descriptor):
            return True
        if os.fstat(descriptor).st_size < position.offset:
            return True
        return bool(position.head) and os.pread(descriptor, len(position.head), 0) != position.head

    def _read_from(self, descriptor: int, *, rotated: bool) -> Read:
        offset = self.position.offset
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        try:
            chunks: list[bytes] = []
            end = offset
            while chunk := os.pread(descriptor, _CHUNK, end):
                chunks.append(chunk)
                end += len(chunk)
            if len(self.position.head) < HEAD:
                self.position.head = os.pread(descriptor, HEAD, 0)
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        data = b"".join(chunks)
        complete = data[: data.rfind(b"\n") + 1]
        self.position.offset = offset + len(complete)
        lines, skipped = [], 0
        for text in complete.splitlines():
            try:
                line = json.loads(text)
            except ValueError:
                line = None
            if isinstance(line, dict):
                lines.append(line)
            elif text.strip():
                skipped += 1
        return Read(lines, rotated, skipped)


def _identity(descriptor: int) -> tuple[int, int]:
    status = os.fstat(descriptor)
    return status.st_dev, status.st_ino
