"""`run --watch`: run again whenever an input changes, and on a heartbeat.

Observers publish a snapshot atomically: a new directory renamed into place, or a symlink
swapped to point at one. A watch set up on the old directory sees nothing of that, nor of
anything after it. So where each input leads (its real path, device and inode) is looked at
again every STEP_MS, which costs a few stat calls, and when it leads somewhere else the inputs
are run again and the watch is set up anew on what they are now.
"""

from __future__ import annotations

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
# How often to look where the inputs lead (a few stat calls), when nothing else wakes us.
LOOK_MS = 1000
# Every so many heartbeats, the inputs are walked whatever the watcher said: it may have
# missed something (an overflowing kernel queue, a file system it cannot watch).
RECHECK_EVERY = 30

Identity = tuple[str, int, int] | None  # where a watched path leads: real path, device, inode


def watch(cycle: Callable[[], None], watched: list[Path], ignored: set[Path],
          heartbeat: float, stopper: Stopper,
          noticed: Callable[[set[str] | None], None] | None = None) -> None:
    """Runs `cycle`, then again after each burst of changes under `watched` (an observer
    writing 500 files gives one run), when an input is replaced, and at least every
    `heartbeat` seconds, so that a world that stops changing is still noticed going stale.
    Before each run, `noticed` hears the real paths that changed; None when that is not
    known (the first run, an input replaced, every RECHECK_EVERY heartbeats)."""
    from watchfiles import watch as changes_under

    ignored_names = {str(path) for path in ignored}

    def relevant(change: object, path: str) -> bool:
        return path not in ignored_names and not os.path.basename(path).startswith(".")

    tell = noticed or (lambda changed: None)
    tell(None)
    cycle()
    last, beats = time.monotonic(), 0
    while not stopper.stopping:
        leads = {path: _identity(path) for path in watched}
        roots = sorted({identity[0] for identity in leads.values() if identity is not None})
        if not roots:
            return
        moved = False
        for changes in changes_under(*roots, watch_filter=relevant, debounce=DEBOUNCE_MS,
                                     step=STEP_MS, rust_timeout=min(LOOK_MS, int(heartbeat * 1000)),
                                     yield_on_timeout=True, stop_event=stopper.event,
                                     raise_interrupt=False):
            if stopper.event.is_set():
                return
            moved = any(_identity(path) != lead for path, lead in leads.items())
            beat = not changes and not moved and time.monotonic() - last >= heartbeat
            if changes or moved or beat:
                beats += beat
                unknown = moved or (beat and beats % RECHECK_EVERY == 0)
                tell(None if unknown else {path for _, path in changes})
                cycle()
                last = time.monotonic()
            if moved:
                break  # watch what the inputs are now
        if not moved:
            return


def _identity(path: Path) -> Identity:
    try:
        real = os.path.realpath(path)
        status = os.stat(real)
    except OSError:
        return None
    return real, status.st_dev, status.st_ino
