"""`observe docker`: the world as Docker Engine API endpoints (Docker, or Podman's compatible
socket) see it: one service record per service name on each node, the node online when its
endpoint answered.

The mapping from a container to a record is pure (`container_record`, `service_records`), so
that it is tested without an engine; `observe_endpoint` is the only part that talks to one.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

import typer

from supervisor.containers import SERVICE_LABEL, image_version
from supervisor.errors import InputError, Problem
from supervisor.model import NAME
from supervisor.observe.endpoints import (
    TIMEOUT_SECONDS,
    Endpoint,
    EndpointError,
    collect_leaked_sockets,
    connect,
    describe,
    engine_errors,
    local_endpoint,
    parse_node_options,
)
from supervisor.observe.runner import (
    Cycle,
    IntervalOpt,
    OnceOpt,
    WorldDirOpt,
    run_observer,
    world_directory,
)

if TYPE_CHECKING:
    from supervisor.observe.snapshot import NodeObservation

COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_PROJECT = "com.docker.compose.project"
INSPECT_THREADS = 4

# When replicas of one service disagree and none is ok, the record shows the worst of them.
_WORST_FIRST = ("failed", "degraded", "starting", "unknown", "stopped")
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


class Claim(NamedTuple):
    """One container's view of the service it runs."""

    service: str
    record: dict[str, Any]


def service_name(labels: dict[str, str], container_name: str) -> str | None:
    """The inventory name a container answers to: an explicit `homelab.service` label first
    (the documented way to tell apart two stacks' `db`), then its Compose service, then the
    container's name. Lowercased, since Docker allows capitals and the inventory does not;
    None when even that is no valid service name."""
    name = (labels.get(SERVICE_LABEL) or labels.get(COMPOSE_SERVICE)
            or container_name.lstrip("/")).lower()
    return name if NAME.fullmatch(name) else None


def container_status(state: dict[str, Any]) -> str:
    """Docker's state and health in the world's words (see docs/observe.md for the table)."""
    status = str(state.get("Status") or "").lower()
    health = str((state.get("Health") or {}).get("Status") or "").lower()
    if status == "running":
        return {"unhealthy": "degraded", "starting": "starting"}.get(health, "ok")
    if status in ("created", "configured", "initialized"):  # the last two: Podman's words
        return "starting"
    if status == "restarting":
        return "failed"
    if status in ("exited", "stopped"):
        return "stopped" if state.get("ExitCode") == 0 else "failed"
    if status == "dead":
        return "failed"
    if status == "paused":
        return "degraded"  # up but serving nothing
    return "unknown"  # removing, or a state this observer does not know


def parse_engine_time(text: object) -> datetime | None:
    """Docker's nanosecond timestamps, to the second; its zero time means never."""
    if not isinstance(text, str):
        return None
    found = _TIME.match(text)
    if found is None or text.startswith("0001-"):
        return None
    zone = "+00:00" if found.group(3) == "Z" else found.group(3)
    return datetime.fromisoformat(found.group(1) + zone).astimezone(UTC)


def container_record(container: dict[str, Any]) -> Claim | None:
    """The service record one container (as `docker inspect` gives it) stands for."""
    config = container.get("Config") or {}
    state = container.get("State") or {}
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    name = service_name(labels, str(container.get("Name") or container.get("Id", "")))
    if name is None:
        return None
    status = container_status(state)
    raw = str(state.get("Status") or "").lower()
    if raw in ("exited", "stopped", "dead"):
        since = parse_engine_time(state.get("FinishedAt"))
    elif raw in ("created", "configured", "initialized"):
        since = parse_engine_time(container.get("Created"))
    else:
        since = parse_engine_time(state.get("StartedAt"))
    image = str(config.get("Image") or container.get("Image") or "")
    record: dict[str, Any] = {
        "status": status,
        "image": image,
        "restarts": int(container.get("RestartCount") or 0),
        "exit_code": int(state.get("ExitCode") or 0),
        "health": str((state.get("Health") or {}).get("Status") or "none").lower(),
        "container_id": str(container.get("Id", "")),
        "container_name": str(container.get("Name") or "").lstrip("/"),
    }
    version = image_version(image, labels)
    if version is not None:
        record["version"] = version
    if since is not None:
        record["since"] = since
    if labels.get(COMPOSE_PROJECT):
        record["compose_project"] = labels[COMPOSE_PROJECT]
    return Claim(name, record)


def service_records(containers: list[dict[str, Any]]) -> tuple[dict[str, dict[str, Any]],
                                                                  list[str]]:
    """One record per service name, and a warning per container that has no valid name.

    Several containers claiming one name (a scaled service, `docker compose run` beside the
    service, or a name reused by two stacks) make one record: ok when all are ok, degraded when
    only some are, else the worst of them; the fields are the representative container's, and
    `replicas` says how many there were.
    """
    claims: dict[str, list[dict[str, Any]]] = {}
    warnings: list[str] = []
    for container in containers:
        claim = container_record(container)
        if claim is None:
            warnings.append(f"container {str(container.get('Name', '')).lstrip('/')} "
                            f"({str(container.get('Id', ''))[:12]}) has no valid service name; "
                            f"give it a '{SERVICE_LABEL}' label")
            continue
        claims.setdefault(claim.service, []).append(claim.record)
    return {name: _combined(claims[name]) for name in sorted(claims)}, warnings


def _combined(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    def rank(record: dict[str, Any]) -> tuple[int, float, str]:  # worst first, then newest
        status = record["status"]
        since = record.get("since")
        return (_WORST_FIRST.index(status) if status in _WORST_FIRST else len(_WORST_FIRST),
                -since.timestamp() if since else 0.0, record["container_id"])

    worst: dict[str, Any] = min(replicas, key=rank)  # ok sorts last
    chosen = {**worst}
    if chosen["status"] != "ok" and any(r["status"] == "ok" for r in replicas):
        chosen["status"] = "degraded"
    chosen["replicas"] = len(replicas)
    return chosen


def observe_endpoint(endpoint: Endpoint, now: datetime, timeout: float) -> tuple[
        NodeObservation, list[str]]:
    """Lists and inspects every container at `endpoint`. Any failure of the endpoint raises
    `EndpointError`; a container removed between the listing and its inspection is simply
    gone (it is not part of this observation)."""
    from concurrent.futures import ThreadPoolExecutor

    import docker.errors

    from supervisor.observe.snapshot import NodeObservation

    client = connect(endpoint, timeout)
    failure: str | None = None
    try:
        listing = client.api.containers(all=True)
        engine = client.api.version(api_version=False)

        def inspect(container_id: str) -> dict[str, Any] | None:
            try:
                return dict(client.api.inspect_container(container_id))
            except docker.errors.NotFound:
                return None

        with ThreadPoolExecutor(INSPECT_THREADS) as pool:
            inspected = list(pool.map(inspect, [str(c["Id"]) for c in listing]))
    except engine_errors() as error:
        failure = describe(error, endpoint, timeout)
    finally:
        client.close()
    if failure is not None:
        collect_leaked_sockets(endpoint)
        raise EndpointError([endpoint.problem(failure)])
    services, warnings = service_records([c for c in inspected if c is not None])
    return NodeObservation(status="online", last_seen=now, services=services,
                           fields={"engine": _engine(engine)}), [
        f"node {endpoint.node} ({endpoint.url}): {warning}" for warning in warnings]


def _engine(version: dict[str, Any]) -> str:
    components = version.get("Components") or [{}]
    name = str(components[0].get("Name") or "Engine")
    if name == "Engine":  # Docker calls itself just that; Podman says "Podman Engine"
        name = "Docker Engine"
    return f"{name} {version.get('Version', '')}".strip()


def observe(endpoints: list[Endpoint], now: datetime, timeout: float) -> Cycle:
    """Every endpoint at once (a slow one does not hold up the others). A node whose endpoint
    failed is offline and keeps its records; the failure is among `problems`."""
    from concurrent.futures import ThreadPoolExecutor

    from supervisor import __version__
    from supervisor.observe.snapshot import NodeObservation, Observation

    def one(endpoint: Endpoint) -> tuple[NodeObservation, list[str], list[Problem]]:
        try:
            node, warnings = observe_endpoint(endpoint, now, timeout)
        except EndpointError as error:
            return NodeObservation(status="offline"), [], error.problems
        return node, warnings, []

    with ThreadPoolExecutor(max(1, min(len(endpoints), 8))) as pool:
        results = list(pool.map(one, endpoints))
    nodes = {endpoint.node: result[0] for endpoint, result in zip(endpoints, results, strict=True)}
    return Cycle(
        Observation(observed_at=now, observer={"name": "supervisor observe docker",
                                               "version": __version__}, nodes=nodes),
        warnings=[w for result in results for w in result[1]],
        problems=[p for result in results for p in result[2]],
    )



def command(
    node: Annotated[
        list[str] | None,
        typer.Option("--node", metavar="NAME=ENDPOINT", show_default=False,
                     help="A node and its engine: unix:///var/run/docker.sock, tcp://host:2375, "
                     "ssh://user@host, or Podman's socket; repeat for more nodes. [default: "
                     "this host, at $DOCKER_HOST or the local socket]"),
    ] = None,
    world: WorldDirOpt = None,
    once: OnceOpt = False,
    interval: IntervalOpt = None,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="SECONDS",
                            help="How long an endpoint may take to answer."),
    ] = TIMEOUT_SECONDS,
) -> None:
    """Observe Docker Engine API endpoints (Docker, or Podman's compatible socket)."""
    if not 0 < timeout < math.inf:
        raise InputError([Problem("--timeout", message="must be a positive number of seconds")])
    endpoints = parse_node_options(node) if node else [local_endpoint()]
    directory = world_directory(world)

    def observe_once() -> Cycle:
        return observe(endpoints, datetime.now(UTC).replace(microsecond=0), timeout)

    run_observer(observe_once, directory, once=once, interval=interval)
