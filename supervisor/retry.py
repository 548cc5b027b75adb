"""What the `run` loop does when a run fails for an operational reason: a full disk, a lock
another process holds, a state file refused, a metrics directory that vanished.

The loop never exits on those: it says so (on stderr every time, and in the event log as a
`supervisor_error` line once per distinct problem, or only on stderr when the log itself is what
fails), keeps its state (the checkpoint is only ever replaced whole), and tries again after a
delay that doubles with each failure in a row, from the interval up to five minutes (or the
interval, when that is longer).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from supervisor.errors import SupervisorError
from supervisor.eventlog import EventLog
from supervisor.replay import ERROR, SOURCE, event_id
from supervisor.timestamps import format_time

MAX_DELAY = 300.0


def backoff(interval: float, failures: int) -> float:
    """The wait before the next attempt after `failures` failed runs in a row."""
    return float(min(interval * 2 ** min(failures - 1, 32), max(interval, MAX_DELAY)))


@dataclass
class Retrying:
    """Runs a cycle until it completes, reporting each failure and backing off between them."""

    log: EventLog
    instance: str
    interval: float
    say: Callable[[str], None]  # stderr
    stopping: Callable[[], bool]
    sleep_until: Callable[[float], None]
    logged: str | None = None  # the problem last written to the log, to write each once

    def __call__(self, cycle: Callable[[], None]) -> None:
        failures = 0
        while not self.stopping():
            try:
                cycle()
            except SupervisorError as error:
                if self.stopping():
                    return
                failures += 1
                delay = backoff(self.interval, failures)
                self.report(error, delay)
                self.sleep_until(time.monotonic() + delay)
                continue
            self.logged = None
            return

    def report(self, error: SupervisorError, delay: float) -> None:
        text = "\n".join(str(problem) for problem in error.problems)
        for problem in error.problems:
            self.say(str(problem))
        self.say(f"supervisor: the run failed; state kept, trying again in {delay:g} s")
        if text == self.logged:
            return
        now = format_time(datetime.now(UTC))
        line = {"ts": now, "source": SOURCE, "type": ERROR, "instance": self.instance,
                "reason": "the run failed; recommendations kept, trying again",
                "problems": [str(problem) for problem in error.problems],
                "run_id": uuid.uuid4().hex[:12], "id": event_id(self.instance, ERROR, now, text)}
        try:
            self.log.append([line])
        except SupervisorError as failure:
            self.say("supervisor: cannot record that in the event log either: "
                     + "; ".join(str(problem) for problem in failure.problems))
            return
        self.logged = text
