"""`supervisor notify <receiver>`: one command per registered notifier."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from supervisor.cli import (
    DEFAULT_EVENTS,
    events_option,
    from_env,
    instance_option,
    reporting_errors,
)
from supervisor.notify import NOTIFIERS

if TYPE_CHECKING:
    from supervisor.notify import Notifier

app = typer.Typer(
    help="Deliver the event log's transitions to people: " + ", ".join(NOTIFIERS) + ".",
    no_args_is_help=True, rich_markup_mode=None,
)

EventsOpt = Annotated[Path | None, events_option("The event log, read only.")]
StateOpt = Annotated[
    Path | None,
    typer.Option("--state", metavar="FILE", show_default=False,
                 help="Where this notifier keeps its place in the log and what it has not "
                 "delivered yet; one per notifier. [env SUPERVISOR_NOTIFY_STATE; default "
                 "/tmp/supervisor-notify-<receiver>.json]"),
]
InstanceOpt = Annotated[
    str | None,
    instance_option("Deliver only this supervisor instance's events.",
                    "every instance writing the log"),
]
OnceOpt = Annotated[bool, typer.Option("--once", help="Deliver what is pending and exit "
                                       "(for cron and timers). The default.")]
FollowOpt = Annotated[bool, typer.Option("--follow", help="Keep delivering as the log grows, "
                                         "until SIGTERM or SIGINT.")]
PollOpt = Annotated[
    float | None,
    typer.Option("--poll", metavar="SECONDS", show_default=False,
                 help="With --follow: look at the log every SECONDS instead of being told by "
                 "inotify (for a log on NFS)."),
]
RetryMaxOpt = Annotated[
    float, typer.Option("--retry-max", metavar="SECONDS",
                        help="Longest wait between retries to a receiver that is down."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but problems.")]


@app.command("alertmanager")
@reporting_errors
def alertmanager_command(
    url: Annotated[str, typer.Argument(metavar="URL", help="Alertmanager, e.g. "
                                       "http://127.0.0.1:9093")],
    events: EventsOpt = None,
    state: StateOpt = None,
    instance: InstanceOpt = None,
    once: OnceOpt = False,
    follow: FollowOpt = False,
    poll: PollOpt = None,
    repost: Annotated[
        float, typer.Option("--repost", metavar="SECONDS",
                            help="Post the open alerts again this often; keep it well under "
                            "Alertmanager's resolve_timeout (default 5m).")] = 60.0,
    retry_max: RetryMaxOpt = 60.0,
    quiet: QuietOpt = False,
) -> None:
    """Keep Alertmanager's alerts in step with the open recommendations."""
    from supervisor.notify.alertmanager import Alertmanager

    _positive("--repost", repost)
    _deliver(Alertmanager(url, refresh_interval=repost), events, state, instance, once, follow,
             poll, retry_max, quiet)


@app.command("apprise")
@reporting_errors
def apprise_command(
    urls: Annotated[list[str], typer.Argument(metavar="URL...", help="Apprise URLs: ntfy://, "
                                              "gotify://, mqtt://, mailto://, json:// ...")],
    events: EventsOpt = None,
    state: StateOpt = None,
    instance: InstanceOpt = None,
    once: OnceOpt = False,
    follow: FollowOpt = False,
    poll: PollOpt = None,
    retry_max: RetryMaxOpt = 60.0,
    quiet: QuietOpt = False,
) -> None:
    """One message per run that changed something (needs the notify extra)."""
    from supervisor.notify.apprise import AppriseNotifier

    _deliver(AppriseNotifier(urls), events, state, instance, once, follow, poll, retry_max,
             quiet)


def _positive(option: str, value: float | None) -> None:
    import math

    from supervisor.errors import InputError, Problem

    if value is not None and not 0 < value < math.inf:
        raise InputError([Problem(option, message="must be a positive number of seconds")])


def _deliver(notifier: Notifier, events: Path | None, state: Path | None, instance: str | None,
             once: bool, follow: bool, poll: float | None, retry_max: float,
             quiet: bool) -> None:
    from supervisor.errors import InputError, Problem
    from supervisor.notify.cursor import held, load
    from supervisor.notify.deliver import Delivery, Stop
    from supervisor.notify.deliver import follow as keep_following
    from supervisor.notify.feed import Feed

    if once and follow:
        raise InputError([Problem("--once", message="excludes --follow")])
    if poll is not None and not follow:
        raise InputError([Problem("--poll", message="only applies with --follow")])
    _positive("--poll", poll)
    _positive("--retry-max", retry_max)
    env = os.environ
    events = from_env(events, "SUPERVISOR_EVENTS", DEFAULT_EVENTS)
    state = state or Path(env.get("SUPERVISOR_NOTIFY_STATE")
                          or f"/tmp/supervisor-notify-{notifier.name}.json")
    instance = instance or env.get("SUPERVISOR_INSTANCE") or None

    def warn(message: str) -> None:
        sys.stderr.write(f"{message}\n")
        sys.stderr.flush()

    with held(state):
        cursor = load(state, notifier.name)
        cursor.retarget(notifier.receivers)
        feed = Feed(events, cursor.position, keep_open=follow)
        delivery = Delivery(notifier, feed, cursor, state, instance=instance, warn=warn,
                            retry_max=retry_max, retrying=follow,
                            report=None if quiet else _say)
        try:
            if follow:
                keep_following(delivery, Stop(), poll=poll)
            elif not delivery.step():
                warn(f"supervisor: not delivered to {len(delivery.failures)} receiver(s); "
                     "kept for the next run")
                raise typer.Exit(1)
        finally:
            feed.close()


def _say(message: str) -> None:
    sys.stdout.write(f"{message}\n")
    sys.stdout.flush()
