"""Which input files changed, as the kernel says it: inotify, blocking until something does.

`run --watch` must hear of a change within a fraction of a second, and cost nothing while
nothing changes. A watcher that polls its queue (watchfiles wakes every step) pays for every
wake-up whether anything changed or not: on a virtual machine that is most of an idle
supervisor's CPU. Here the process sleeps in `poll` on the inotify descriptor until the kernel
has an event, or until the caller's timeout (its look at where the inputs lead).

Directories are watched one by one (inotify is not recursive): every directory under the roots,
and each new one as it appears. A file root (a rule file) is watched itself. What cannot be
said exactly comes back as None, "something changed, look at everything": a directory that
appeared (files may have been written in it before its watch was set), a queue that overflowed,
a watch that could not be added. Where inotify is not available (not Linux), watchfiles
polls instead.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

Found = set[str] | None  # the real paths that changed; None: something, look at everything


def _inotify() -> Any:
    """inotify_simple, where the kernel has inotify (Linux); else None."""
    try:
        import inotify_simple
    except (ImportError, OSError):  # pragma: no cover - where inotify is missing
        return None
    return inotify_simple


class Changes:
    """The changes under `roots` (real paths), except hidden files (an observer's temporaries)
    and `ignored` (real paths: the supervisor's own state files)."""

    def __init__(self, roots: list[str], ignored: set[str], *, step_ms: int, debounce_ms: int,
                 timeout_ms: int) -> None:
        """`wait` returns after `timeout_ms` when nothing changed."""
        self._ignored = ignored
        self._step_ms, self._debounce_ms, self._timeout_ms = step_ms, debounce_ms, timeout_ms
        self._directories: dict[int, str] = {}  # watch descriptor -> the path it watches
        self._blind = False  # some watch could not be set: every change is "look at everything"
        self._polled: _Polled | None = None
        module = _inotify()
        if module is None:
            self._polled = _Polled(roots, self._relevant, step_ms, debounce_ms, timeout_ms)
            return
        flags = module.flags
        # Writes, not opens and closes: a lock file opened and closed is no change.
        self._file_mask = flags.MODIFY | flags.ATTRIB | flags.DELETE_SELF | flags.MOVE_SELF
        self._directory_mask = (self._file_mask | flags.CREATE | flags.DELETE | flags.MOVED_FROM
                                | flags.MOVED_TO | flags.DONT_FOLLOW)
        self._overflow, self._gone = flags.Q_OVERFLOW, flags.IGNORED
        self._directory, self._created = flags.ISDIR, flags.CREATE | flags.MOVED_TO
        self._inotify = module.INotify()
        for root in roots:
            if os.path.isdir(root):
                self._watch_tree(root)
            else:
                self._watch(root, self._file_mask)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._polled is not None:
            self._polled.close()
        else:
            self._inotify.close()

    def wait(self) -> Found:
        """What changed within the timeout (an empty set: nothing did). A burst of changes is
        taken whole: it ends at a step of `step_ms` without a change, but not before the second
        step (a writer's lock file, then its records tens of milliseconds later, are one burst;
        watchfiles, polling every step, never ended one sooner), or after `debounce_ms`."""
        if self._polled is not None:
            return self._polled()
        events = self._inotify.read(timeout=self._timeout_ms)
        if not events:
            return set()
        found: set[str] = set()
        unknown = self._take(events, found)
        deadline = time.monotonic() + self._debounce_ms / 1000
        steps = 0
        while time.monotonic() < deadline:
            time.sleep(self._step_ms / 1000)
            steps += 1
            events = self._inotify.read(timeout=0)
            if events:
                unknown |= self._take(events, found)
            elif steps >= 2:
                break
        return None if unknown or self._blind else found

    def _take(self, events: list[Any], found: set[str]) -> bool:
        """Adds the paths `events` name to `found`; True if they cannot all be named."""
        unknown = False
        for event in events:
            if event.mask & self._overflow:
                unknown = True
                continue
            directory = self._directories.get(event.wd)
            if event.mask & self._gone:
                self._directories.pop(event.wd, None)
                continue
            if directory is None:
                continue
            path = os.path.join(directory, event.name) if event.name else directory
            if event.mask & self._directory and event.mask & self._created:
                self._watch_tree(path)
                unknown = True  # what was written in it before its watch was set is not known
            if self._relevant(path):
                found.add(path)
        return unknown

    def _relevant(self, path: str) -> bool:
        return path not in self._ignored and not os.path.basename(path).startswith(".")

    def _watch_tree(self, root: str) -> None:
        for directory, subdirectories, _ in os.walk(root):
            self._watch(directory, self._directory_mask)
            subdirectories.sort()

    def _watch(self, path: str, mask: int) -> None:
        try:
            self._directories[self._inotify.add_watch(path, mask)] = path
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTDIR):  # gone already: nothing to watch
                self._blind = True  # the watch limit, say: changes are still seen, not named


class _Polled:
    """`Changes.wait` from watchfiles' Rust watcher (notify, on whatever the platform has), which
    polls its queue every step."""

    def __init__(self, roots: list[str], relevant: Callable[[str], bool], step_ms: int,
                 debounce_ms: int, timeout_ms: int) -> None:
        from watchfiles._rust_notify import RustNotify

        self._relevant = relevant
        self._settings = (debounce_ms, step_ms, timeout_ms, None)
        # Set up now, as inotify's watches are: changes from here on are seen.
        self._watcher = RustNotify(roots, False, False, 300, True, False)

    def __call__(self) -> Found:
        found = self._watcher.watch(*self._settings)
        if not isinstance(found, set):
            return set()  # timed out, or a signal: the caller looks at its stopper
        return {path for _, path in found if self._relevant(path)}

    def close(self) -> None:
        self._watcher.close()
