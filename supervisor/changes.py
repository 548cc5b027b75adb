"""Which input files changed, as the kernel says it: inotify, blocking until something does.

`run --watch` must hear of a change within a fraction of a second, and cost nothing while
nothing changes. A watcher that polls its queue (watchfiles wakes every step) pays for every
wake-up whether anything changed or not: on a virtual machine that is most of an idle
supervisor's CPU. Here the process sleeps in `poll` on the inotify descriptor until the kernel
has an event, a signal arrives, or the caller's timeout (its next heartbeat) passes.

Directories are watched one by one (inotify is not recursive): every directory under the roots,
and each new one as it appears. A file root (a rule file) is watched itself. What cannot be
said exactly comes back as None, "something changed, look at everything": a directory that
appeared (files may have been written in it before its watch was set), a queue that overflowed,
a watch that could not be added.

Observers publish a snapshot whole: a directory renamed into place, or a symlink swapped to
point at a new one. A watch on the old directory sees nothing of that, so the way to each
input is watched too: for every name looked up on the way (each component of the path as
given, and of every symlink met), the directory holding it. A name there created, removed or
renamed (hidden or not: `.world.new` renamed to `world` counts) sets `rerouted`: the inputs may
lead somewhere else. Other names there (`world.tmp` being written) are no change.

A stop must not wait for the timeout: Python retries `poll` after a signal whose handler
returns, so the signal's number is also written to a pipe (`signal.set_wakeup_fd`) that `poll`
watches; a wake-up by it is "nothing changed", and the caller looks at its stopper.

`must_look` says where this is not all true: some way could not be watched (a directory missing
before the last name, the watch limit), signals cannot be heard (not the main thread), or
inotify is missing (not Linux: watchfiles polls instead). The caller then looks where the
inputs lead at its own pace.
"""

from __future__ import annotations

import errno
import math
import os
import select
import signal
import time
from collections.abc import Callable, Sequence
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


# Symlinks followed on the way to one input before giving up, as the kernel does (MAXSYMLINKS).
MAX_LINKS = 40
# The longest wait `poll` takes (an int of milliseconds, about 24 days): a longer heartbeat
# (`--interval`) is waited for in several.
LONGEST_MS = 2**31 - 1


class Changes:
    """The changes under `roots` (real paths), except hidden files (an observer's temporaries)
    and `ignored` (real paths: the supervisor's own state files); and, through `rerouted`, a
    swap on the way to any of `inputs` (the paths as the user gave them)."""

    def __init__(self, roots: list[str], ignored: set[str], *, step_ms: int, debounce_ms: int,
                 inputs: Sequence[str] = ()) -> None:
        self._ignored = ignored
        self._step_ms, self._debounce_ms = step_ms, debounce_ms
        self._directories: dict[int, str] = {}  # watch descriptor -> the path it watches
        self._ways: dict[int, set[str]] = {}  # watch descriptor -> names on the way to an input
        self._blind = False  # some watch could not be set: every change is "look at everything"
        self._polled: _Polled | None = None
        self._wake: tuple[int, int] | None = None  # the signal pipe's ends, while it is ours
        self._previous_wake = -1
        self.rerouted = False  # the last wait saw a name on the way to an input change
        self.must_look = True  # a swap or a stop may not wake `wait`: look at your own pace
        module = _inotify()
        if module is None:
            self._polled = _Polled(roots, self._relevant, step_ms, debounce_ms)
            return
        flags = module.flags
        # Writes, not opens and closes: a lock file opened and closed is no change.
        self._file_mask = flags.MODIFY | flags.ATTRIB | flags.DELETE_SELF | flags.MOVE_SELF
        self._directory_mask = (self._file_mask | flags.CREATE | flags.DELETE | flags.MOVED_FROM
                                | flags.MOVED_TO | flags.DONT_FOLLOW)
        # Added to whatever mask the directory has already (it may be under a root too); a
        # directory's own events (DELETE_SELF, MOVE_SELF) matter to every name it holds.
        self._way_mask = (flags.CREATE | flags.MOVED_TO | flags.MOVED_FROM | flags.DELETE
                          | flags.DELETE_SELF | flags.MOVE_SELF | flags.DONT_FOLLOW
                          | flags.ONLYDIR | flags.MASK_ADD)
        self._way_gone = flags.DELETE_SELF | flags.MOVE_SELF | flags.IGNORED
        self._overflow, self._gone = flags.Q_OVERFLOW, flags.IGNORED
        self._directory, self._created = flags.ISDIR, flags.CREATE | flags.MOVED_TO
        self._inotify = module.INotify()
        self._poller = select.poll()
        self._poller.register(self._inotify.fileno(), select.POLLIN)
        for root in roots:
            if os.path.isdir(root):
                self._watch_tree(root)
            else:
                self._watch(root, self._file_mask)
        ways = [self._watch_way(path) for path in inputs]  # every way, even past one not whole
        hears = self._hear_signals()  # a stop is quick even where we must look
        self.must_look = not (all(ways) and hears)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._polled is not None:
            self._polled.close()
            return
        if self._wake is not None:
            signal.set_wakeup_fd(self._previous_wake)
            for end in self._wake:
                os.close(end)
        self._inotify.close()

    def wait(self, timeout_ms: int) -> Found:
        """What changed within `timeout_ms` (an empty set: nothing did, or a signal came). A
        burst of changes is taken whole: it ends at a step of `step_ms` without a change, but
        not before the second step (a writer's lock file, then its records tens of milliseconds
        later, are one burst; watchfiles, polling every step, never ended one sooner), or after
        `debounce_ms`. A swap on the way to an input is part of the burst (an observer renames
        the old world away, then the new one into place) and sets `rerouted`."""
        self.rerouted = False
        timeout_ms = min(timeout_ms, LONGEST_MS)
        if self._polled is not None:
            return self._polled(timeout_ms)
        found: set[str] = set()
        until = time.monotonic() + timeout_ms / 1000
        while True:
            ready = self._poller.poll(max(0, math.ceil((until - time.monotonic()) * 1000)))
            if not ready:
                return set()
            if self._wake is not None and any(fd == self._wake[0] for fd, _ in ready):
                self._drain()
                return set()  # a signal: the caller looks at its stopper
            heard, unknown = self._take(self._inotify.read(timeout=0), found)
            if heard:
                break  # else only other names beside a way's: sleep on
        deadline = time.monotonic() + self._debounce_ms / 1000
        steps = 0
        while time.monotonic() < deadline:
            time.sleep(self._step_ms / 1000)
            steps += 1
            heard, more = self._take(self._inotify.read(timeout=0), found)
            unknown |= more
            if not heard and steps >= 2:  # names beside a way's (a busy /tmp) do not prolong it
                break
        return None if unknown or self._blind else found

    def _take(self, events: list[Any], found: set[str]) -> tuple[bool, bool]:
        """Adds the paths `events` name to `found`: whether any of them is a change (under a
        root, or on the way to an input), and whether they cannot all be named."""
        heard = unknown = False
        for event in events:
            if event.mask & self._overflow:
                heard = unknown = True
                continue
            names = self._ways.get(event.wd)
            if names is not None and (event.mask & self._way_gone or event.name in names):
                heard = self.rerouted = True
            directory = self._directories.get(event.wd)
            if event.mask & self._gone:
                self._directories.pop(event.wd, None)
                self._ways.pop(event.wd, None)
                continue
            if directory is None:
                continue
            heard = True
            path = os.path.join(directory, event.name) if event.name else directory
            if event.mask & self._directory and event.mask & self._created:
                self._watch_tree(path)
                unknown = True  # what was written in it before its watch was set is not known
            if self._relevant(path):
                found.add(path)
        return heard, unknown

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

    def _watch_way(self, path: str) -> bool:
        """Watches the directory holding each name on the way to `path`; False where that
        does not cover every swap that could make it lead elsewhere."""
        way, whole = _way(path)
        for directory, name in way:
            try:
                self._ways.setdefault(self._inotify.add_watch(directory, self._way_mask),
                                      set()).add(name)
            except OSError:  # the watch limit, or the directory went away meanwhile
                whole = False
        return whole

    def _hear_signals(self) -> bool:
        """Makes a signal wake `wait`; False where it cannot (only the main thread may)."""
        wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._previous_wake = signal.set_wakeup_fd(wake[1], warn_on_full_buffer=False)
        except ValueError:
            for end in wake:
                os.close(end)
            return False
        self._wake = wake
        self._poller.register(wake[0], select.POLLIN)
        return True

    def _drain(self) -> None:
        assert self._wake is not None
        try:
            while os.read(self._wake[0], 512):
                pass
        except BlockingIOError:
            pass


def _way(path: str) -> tuple[list[tuple[str, str]], bool]:
    """Each name looked up on the way to `path`'s real path, with the real directory holding
    it, symlinks followed as the kernel does; and whether the way is known whole. It is when
    only its last name is missing (its creation, in a watched directory, is seen); not when a
    directory before it is missing, or links loop."""
    way: list[tuple[str, str]] = []
    try:
        directory = "/" if os.path.isabs(path) else os.getcwd()
    except OSError:  # the working directory was removed
        return way, False
    names = path.split("/")
    names.reverse()  # a stack: a symlink's target is pushed in front of what is left
    links = 0
    while names:
        name = names.pop()
        if name in ("", "."):
            continue
        if name == "..":
            directory = os.path.dirname(directory)
            continue
        way.append((directory, name))
        here = os.path.join(directory, name)
        try:
            target = os.readlink(here)
        except OSError as error:
            if error.errno == errno.EINVAL:  # not a symlink: go down into it
                directory = here
                continue
            last = not [left for left in names if left not in ("", ".")]
            return way, error.errno == errno.ENOENT and last
        links += 1
        if links > MAX_LINKS:
            return way, False
        if os.path.isabs(target):
            directory = "/"
        pushed = target.split("/")
        pushed.reverse()
        names.extend(pushed)
    return way, True


class _Polled:
    """`Changes.wait` from watchfiles' Rust watcher (notify, on whatever the platform has), which
    polls its queue every step."""

    def __init__(self, roots: list[str], relevant: Callable[[str], bool], step_ms: int,
                 debounce_ms: int) -> None:
        from watchfiles._rust_notify import RustNotify

        self._relevant = relevant
        self._debounce_ms, self._step_ms = debounce_ms, step_ms
        # Set up now, as inotify's watches are: changes from here on are seen.
        self._watcher = RustNotify(roots, False, False, 300, True, False)

    def __call__(self, timeout_ms: int) -> Found:
        found = self._watcher.watch(self._debounce_ms, self._step_ms, timeout_ms, None)
        if not isinstance(found, set):
            return set()  # timed out, or a signal: the caller looks at its stopper
        return {path for _, path in found if self._relevant(path)}

    def close(self) -> None:
        self._watcher.close()
