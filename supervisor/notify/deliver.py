"""Running a notifier: read the log, save the cursor, send, retry with backoff.

Each step reads what the log gained, saves it to the outbox (before anything is sent), then
offers every receiver what it has pending, unless that receiver is waiting out a backoff after
a failure. A receiver that accepted is marked so in the state file at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from supervisor.notify import Notifier, Undelivered
from supervisor.notify.cursor import Cursor, save
from supervisor.notify.feed import Feed

FIRST_RETRY = 1.0  # seconds; doubled after each failure up to `retry_max`
TICK = 1.0  # seconds between checks for due retries and refreshes while following


@dataclass
class Retry:
    delay: float = 0.0
    next_at: float = 0.0

    def failed(self, now: float, most: float) -> float:
        self.delay = min(most, self.delay * 2 if self.delay else FIRST_RETRY)
        self.next_at = now + self.delay
        return self.delay


@dataclass
class Delivery:
    notifier: Notifier
    feed: Feed
    cursor: Cursor
    state: Path
    instance: str | None = None
    warn: Callable[[str], None] = print
    retry_max: float = 60.0
    clock: Callable[[], float] = time.monotonic
    report: Callable[[str], None] | None = None  # a line per delivery, for the journal
    retrying: bool = True  # False with --once: the next run retries, not this one
    retries: dict[str, Retry] = field(default_factory=dict)
    refreshed: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # of the last step

    def step(self) -> bool:
        """One round; True when every receiver has everything."""
        self.read()
        self.failures = []
        offered = [self.offer(receiver) for receiver in self.notifier.receivers]  # each one
        return all(offered)

    def read(self) -> None:
        reads = self.feed.read()
        if not reads:
            return
        skipped = self.cursor.take(reads, self.notifier.receivers, self.instance)
        self.cursor.position = self.feed.position
        save(self.state, self.cursor)
        if skipped:
            self.warn(f"{self.feed.path}: skipped {skipped} line(s) that are not whole "
                      "supervisor events")

    def offer(self, receiver: str) -> bool:
        now = self.clock()
        retry = self.retries.setdefault(receiver, Retry())
        batches = self.cursor.pending(receiver)
        interval = self.notifier.refresh_interval
        refresh = interval is not None and now >= self.refreshed.get(receiver, -1e18) + interval
        if not batches and not refresh:
            return True
        if now < retry.next_at:
            return False
        try:
            accepted = self.notifier.send(receiver, batches, self.cursor.open)
            failure = None
        except Undelivered as undelivered:
            accepted, failure = undelivered.accepted, undelivered.reason
        if accepted:
            done = batches[:accepted]
            self.cursor.accepted(receiver, accepted)
            save(self.state, self.cursor)
            if self.report is not None:
                count = sum(len(batch.transitions) for batch in done)
                self.report(f"{self.notifier.describe(receiver)}: delivered {count} "
                            f"transition(s) of {accepted} run(s)")
        if failure is not None:
            delay = retry.failed(self.clock(), self.retry_max)
            message = f"{self.notifier.describe(receiver)}: {failure}"
            self.failures.append(message)
            self.warn(f"{message}; kept, retrying in {delay:g} s" if self.retrying
                      else f"{message}; kept")
            return False
        self.retries[receiver] = Retry()
        self.refreshed[receiver] = now
        return True


class Stop:
    """SIGTERM and SIGINT end the loop after the current step."""

    def __init__(self) -> None:
        self.event = threading.Event()
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._stop)

    def _stop(self, number: int, frame: FrameType | None) -> None:
        self.event.set()


def follow(delivery: Delivery, stop: Stop, *, poll: float | None = None) -> None:
    """Steps whenever the log changes (inotify, through watchfiles), and at least every
    second for retries and refreshes; with `poll`, or where the log's directory cannot be
    watched (inotify watches used up, say), polls every `poll` seconds instead."""
    delivery.step()
    if poll is None:
        try:
            _watch(delivery, stop)
            return
        except (OSError, RuntimeError) as error:
            delivery.warn(f"{delivery.feed.path.parent}: cannot watch ({error}); polling")
            poll = TICK
    while not stop.event.wait(poll):
        delivery.step()


def _watch(delivery: Delivery, stop: Stop) -> None:
    from watchfiles import watch

    log = str(delivery.feed.path)

    def ours(change: object, path: str) -> bool:
        return path == log

    for _ in watch(delivery.feed.path.parent, watch_filter=ours, debounce=1000, step=50,
                   rust_timeout=int(TICK * 1000), yield_on_timeout=True,
                   stop_event=stop.event, raise_interrupt=False):
        if stop.event.is_set():
            break
        delivery.step()
