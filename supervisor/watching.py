"""`run --watch`: run again whenever an input changes, and on a heartbeat.

The changes come from the kernel (`supervisor/changes.py`): the process sleeps until there is
one, a signal comes, or the heartbeat is due, and wakes for nothing else. Observers publish a
snapshot atomically: a new directory renamed into place, or a symlink swapped to point at one.
A watch set up on the old directory sees nothing of that, nor of anything after it; the
watcher hears such a swap on the way to an input (`Changes.rerouted`); then the watch is set up
anew on what the inputs are now (and on the way to them, which may have changed even where they
lead to the same place), and they are run again. Where the watcher cannot hear every
swap or every stop (`Changes.must_look`), where the inputs lead is looked at every LOOK_MS too.

No change may fall between a run and the watches: `run --watch` sets them up before the run
they follow from (`early`), so that an observer writing while the run is under way is heard;
and a swap after a run began, but before the watches were set up, is run for at once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supervisor.transitions import Stopper

# A burst of changes ends after STEP_MS without one (or after DEBOUNCE_MS of changes): short,
# since a run after a change costs little with incremental evaluation (see incremental.py).
STEP_MS = 50
DEBOUNCE_MS = 30_000
# How often to look where the inputs lead (a few stat calls) where the watcher cannot say when
# they may lead elsewhere: each wake-up costs about a millisecond of CPU on a virtual machine,
# and a replaced world is evaluated in full anyway, which takes longer at scale. There it also
# bounds how long a stop waits.
LOOK_MS = 2000
# Every so many heartbeats, the inputs are walked whatever the watcher said: it may have
# missed something (an overflowing kernel queue, a file system it cannot watch).
RECHECK_EVERY = 30

Identity = tuple[str, int, int] | None  # where a watched path leads: real path, device, inode
Lead = tuple[int, int] | None  # device and inode


def watch(cycle: Callable[[], None], watched: list[Path], ignored: set[Path],
          heartbeat: float, stopper: Stopper,
          noticed: Callable[[set[str] | None], None] | None = None, *,
          early: bool = False) -> None:
    """Runs `cycle`, then again after each burst of changes under `watched` (an observer
    writing 500 files gives one run), when an input is replaced, and at least every
    `heartbeat` seconds, so that a world that stops changing is still noticed going stale.
    Before each run, `noticed` hears the real paths that changed; None when that is not
    known (the first run, an input replaced, every RECHECK_EVERY heartbeats).

    `early`: the watches are set up before the first run, and before the run after an input
    was replaced, so that a change while it runs is heard (an observer's write during a long
    first run is otherwise seen only by a later full look); for a `cycle` that writes nothing
    under `watched` but `ignored`. Otherwise they are set up after it, as its own first writes
    (a lock file it creates) are no changes to run again for."""
    from supervisor.changes import Changes

    ignored_names = {os.path.realpath(path) for path in ignored}
    tell = noticed or (lambda changed: None)
    ran: dict[Path, Lead] = {}  # where the inputs led as the last run began
    last, beats = 0.0, 0

    def run(changed: set[str] | None) -> None:
        nonlocal last
        ran.update((path, _lead(path)) for path in watched)
        tell(changed)
        cycle()
        last = time.monotonic()

    owed = early  # a run the next watches are to hear from its start
    if not early:
        run(None)
    while not stopper.stopping:
        identities = [_identity(path) for path in watched]
        roots = sorted({identity[0] for identity in identities if identity is not None})
        if not roots:
            if owed:
                run(None)  # nothing to watch, but the run still reports what is missing
            return
        leads = {path: None if identity is None else identity[1:]
                 for path, identity in zip(watched, identities, strict=True)}
        with Changes(roots, ignored_names, step_ms=STEP_MS, debounce_ms=DEBOUNCE_MS,
                     inputs=[str(path) for path in watched]) as changes:
            if any(_lead(path) != lead for path, lead in leads.items()):
                continue  # replaced while the watches were set up: set them up on what is there
            # A swap during the last run, or after it but before these watches were set up, is
            # heard by none of them: run for it.
            if owed or any(lead != leads[path] for path, lead in ran.items()):
                owed = False
                run(None)
            while not stopper.stopping:
                due = math.ceil((last + heartbeat - time.monotonic()) * 1000)
                found = changes.wait(max(0, min(due, LOOK_MS) if changes.must_look else due))
                if stopper.event.is_set():  # a signal while waiting
                    return
                look = changes.rerouted or changes.must_look or found is None
                # A new way to the same place (a link re-pointed at another link to it) is
                # watched anew too: a swap further along it must be heard.
                moved = changes.rerouted or (look and any(
                    _lead(path) != lead for path, lead in leads.items()))
                if moved and early:
                    owed = True
                    break  # run once the watches are on what the inputs are now
                beat = not moved and found == set() and time.monotonic() - last >= heartbeat
                if moved or found or found is None or beat:
                    beats += beat
                    unknown = moved or found is None or (beat and beats % RECHECK_EVERY == 0)
                    run(None if unknown else found)
                if moved:
                    break  # watch what the inputs are now


def _lead(path: Path) -> Lead:
    """The device and inode `path` leads to: they change when a directory is renamed into its
    place or a symlink on the way is swapped. One stat call, where `_identity`'s real path
    costs one per component."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _identity(path: Path) -> Identity:
    try:
        real = os.path.realpath(path)
        status = os.stat(real)
    except OSError:
        return None
    return real, status.st_dev, status.st_ino
