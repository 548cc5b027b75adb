"""The append-only event log: one JSON object per line, the source of truth for `run`.

Appends take an exclusive `flock` and go out in one write, then fsync. Nothing is ever cut:
other programs may write to the log, and a last line without its newline (theirs, or one of
ours from a writer killed mid-write) is ended with a newline before we append, so at worst it
stays a line that does not parse, which every reader skips. Only bytes we have just written
ourselves, in a write that failed (a full disk), are taken back.

A `Mark` records where our last append ended and what the bytes just before that point were:
if the file at that path no longer holds them, it was rotated, truncated, replaced or deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supervisor.replay import LogState
from supervisor.safefile import open_file, refuse, wait_for_lock, write_all

_TAIL = 4096  # bytes before a mark that identify the file


@dataclass(frozen=True)
class Mark:
    size: int
    tail: str  # sha256 of the (up to) _TAIL bytes before `size`


class EventLog:
    def __init__(self, path: Path, *, lock_timeout: float = 30.0,
                 cancelled: Callable[[], bool] = lambda: False) -> None:
        self.path = path
        self.lock_timeout = lock_timeout
        self.cancelled = cancelled

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def append(self, events: list[dict[str, Any]]) -> Mark:
        """Appends whole lines, durably; returns the mark just after them."""
        data = b"".join(encode(event) for event in events)
        descriptor = open_file(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
        try:
            wait_for_lock(self.path, descriptor, fcntl.LOCK_EX, self.lock_timeout,
                          self.cancelled)
            size = os.fstat(descriptor).st_size
            if size and os.pread(descriptor, 1, size - 1) != b"\n":
                data = b"\n" + data  # end another writer's (or a killed run's) partial line
            try:
                write_all(descriptor, data)
                os.fsync(descriptor)
            except OSError as error:
                # Only what this write added is provably ours to take back.
                with contextlib.suppress(OSError):
                    os.ftruncate(descriptor, size)
                raise refuse(self.path, f"cannot be written: {error.strerror}") from None
            return _mark(descriptor, size + len(data))
        finally:
            os.close(descriptor)

    def holds(self, mark: Mark) -> bool:
        """Whether the file still holds what it held at `mark` (not rotated or replaced)."""
        if not self.exists():
            return mark.size == 0
        descriptor = open_file(self.path, os.O_RDONLY)
        try:
            if os.fstat(descriptor).st_size < mark.size:
                return False
            return _mark(descriptor, mark.size) == mark
        finally:
            os.close(descriptor)

    def lines(self, offset: int = 0) -> Iterator[tuple[bytes, int]]:
        """Each whole line from `offset` on, with the offset just after it. A last line without
        its newline is not yielded: its writer may still be writing it."""
        if not self.exists():
            return
        descriptor = open_file(self.path, os.O_RDONLY)
        with os.fdopen(descriptor, "rb", buffering=1 << 20) as handle:
            handle.seek(offset)
            position = offset
            for line in handle:
                if not line.endswith(b"\n"):
                    return
                position += len(line)
                yield line, position

    def replay(self, state: LogState, offset: int = 0) -> Mark:
        """Applies every whole line from `offset` on to `state`; returns the mark after them.

        Streams: memory holds one line and the open recommendations, whatever the log's size.
        """
        if not self.exists():
            return self.mark_at(0)
        decoder = json.JSONDecoder()
        scan: Callable[[str, int], tuple[Any, int]] = decoder.scan_once  # type: ignore[attr-defined]
        decode = decoder.decode
        apply = state.apply
        descriptor = open_file(self.path, os.O_RDONLY)
        with os.fdopen(descriptor, "rb", buffering=1 << 20) as handle:
            handle.seek(offset)
            line = b"\n"
            for line in handle:
                if line[-1] != 10:  # b"\n"; only the last line can lack it
                    break
                try:
                    text = line.decode()
                    # json.loads less its per-call checks: a compact line (ours) is one value
                    # right up to its newline; any other line takes the whole of json.loads.
                    try:
                        value, end = scan(text, 0)
                    except StopIteration:
                        end = -1
                    if end != len(text) - 1:
                        value = decode(text)
                    apply(value)
                except (ValueError, RecursionError):
                    continue  # not JSON: another writer's, or a partial line ended later
            end = handle.tell() - (len(line) if line[-1] != 10 else 0)
        return self.mark_at(end)

    def mark_at(self, size: int) -> Mark:
        if not self.exists():
            return Mark(0, _digest(b""))
        descriptor = open_file(self.path, os.O_RDONLY)
        try:
            return _mark(descriptor, size)
        finally:
            os.close(descriptor)

    def read(self, offset: int = 0) -> list[dict[str, Any]]:
        """Every whole line that is a JSON object (for tests and small logs)."""
        events = []
        for line, _ in self.lines(offset):
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                continue
            if isinstance(event, dict):
                events.append(event)
        return events


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _mark(descriptor: int, size: int) -> Mark:
    start = max(0, size - _TAIL)
    return Mark(size, _digest(os.pread(descriptor, size - start, start)))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
