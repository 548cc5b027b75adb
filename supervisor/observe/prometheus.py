"""`observe prometheus`: the world as a Prometheus server sees it, and Alertmanager's alerts as
incidents, for the homelabs whose truth already lives there.

One observation: every query of the map evaluated at one instant (so the snapshot is one
moment, not a smear of them), alerts read, the records built (`prometheus_records`, pure) and
written through the shared snapshot writer. A server that cannot be asked fails the
observation and nothing is written: the last snapshot stays and ages until the engine calls it
stale, rather than a world where everything is offline.

Imported when the CLI starts: everything but typer is imported inside the functions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from supervisor import __version__
from supervisor.observe.runner import (
    Cycle,
    IntervalOpt,
    OnceOpt,
    WorldDirOpt,
    run_observer,
    world_directory,
)

if TYPE_CHECKING:
    from supervisor.observe.prometheus_map import PrometheusMap
    from supervisor.observe.prometheus_records import Snapshot
    from supervisor.observe.snapshot import Observation

TIMEOUT_SECONDS = 10.0


def command(
    url: Annotated[str, typer.Argument(
        metavar="URL", show_default=False,
        help="Prometheus's address, like http://127.0.0.1:9090.")],
    map_file: Annotated[Path, typer.Option(
        "--map", metavar="FILE", show_default=False,
        help="Which PromQL gives node liveness, last_seen and service status, and which labels "
        "name nodes and services (YAML; see docs/observe.md).")],
    alertmanager: Annotated[str | None, typer.Option(
        "--alertmanager", metavar="URL", show_default=False,
        help="Also read Alertmanager's alerts as incidents: active ones open, silenced ones "
        "acknowledged.")] = None,
    world: WorldDirOpt = None,
    once: OnceOpt = False,
    interval: IntervalOpt = None,
    timeout: Annotated[float, typer.Option(
        "--timeout", metavar="SECONDS", help="How long each request may take.")
    ] = TIMEOUT_SECONDS,
) -> None:
    """Observe a Prometheus server (and Alertmanager's alerts, as incidents)."""
    from supervisor.errors import InputError, Problem
    from supervisor.observe.prometheus_api import base_url
    from supervisor.observe.prometheus_map import load_map

    if not 0 < timeout < 3600:
        raise InputError([Problem("--timeout", message="must be a number of seconds between 0 "
                                  "and 3600")])
    prometheus = base_url(url, "URL")
    alerts = base_url(alertmanager, "--alertmanager") if alertmanager is not None else None
    prometheus_map = load_map(map_file)
    directory = world_directory(world)

    def observe_once() -> Cycle:
        # Whole seconds, as every observer writes them; Prometheus evaluates at that instant.
        now = datetime.now(UTC).replace(microsecond=0)
        return observe(prometheus, prometheus_map, alerts, now, timeout)

    run_observer(observe_once, directory, once=once, interval=interval)


def observe(url: str, prometheus_map: PrometheusMap, alertmanager: str | None,
            now: datetime, timeout: float = TIMEOUT_SECONDS) -> Cycle:
    """One observation, evaluated at `now`; raises `ObservationError` when a server cannot be
    asked, and `InputError` when Prometheus rejects a query of the map."""
    from supervisor.observe.prometheus_api import active_alerts, run_queries
    from supervisor.observe.prometheus_records import build_world, queries

    results = run_queries(url, queries(prometheus_map), now, timeout)
    alerts = active_alerts(alertmanager, timeout) if alertmanager is not None else None
    observer = {"name": "prometheus", "version": __version__, "prometheus": url}
    if alertmanager is not None:
        observer["alertmanager"] = alertmanager
    snapshot = build_world(prometheus_map, results, observed_at=now, observer=observer,
                           alerts=alerts)
    return Cycle(observation(snapshot, now, observer, incidents=alertmanager is not None),
                 snapshot.notes, [])


def observation(snapshot: Snapshot, now: datetime, observer: dict[str, str], *,
                incidents: bool) -> Observation:
    """The snapshot in the writer's terms: services under their nodes. A node that only
    services name (probed, but with no liveness series) is `unknown`: Prometheus says nothing
    of whether it is up. Without Alertmanager (`incidents` false) the incident records already
    in the world are left alone."""
    from supervisor.observe.snapshot import NodeObservation, Observation
    from supervisor.timestamps import parse_time

    hosted: dict[str, dict[str, dict[str, object]]] = {}
    for service_id, record in snapshot.services.items():
        node, service = service_id.split("/")
        hosted.setdefault(node, {})[service] = record
    nodes = {}
    for name in sorted(snapshot.nodes.keys() | hosted.keys()):
        record = snapshot.nodes.get(name, {"status": "unknown"})
        last_seen = record.get("last_seen")
        nodes[name] = NodeObservation(
            status=str(record["status"]),
            last_seen=parse_time(last_seen) if isinstance(last_seen, str) else None,
            services=hosted.get(name, {}),
        )
    return Observation(observed_at=now, observer=observer, nodes=nodes,
                       incidents=snapshot.incidents if incidents else None)
