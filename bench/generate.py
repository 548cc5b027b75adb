"""Generate a synthetic homelab (inventory + world snapshot) of any size, for benchmarks.

Usage:
    python bench/generate.py OUT_DIR --nodes 100 --services 20 [--seed 1] [--drift 0.05]
                             [--single-file] [--force]

Writes the inventory as OUT_DIR/hosts/<node>/services.yaml and the world snapshot in the
observer's directory layout, OUT_DIR/world/{world.json,nodes/,services/<node>/,deployments/,
incidents/}, so that `supervisor eval OUT_DIR` reads both. With --single-file the world is one
file, OUT_DIR/world.json (pass it with `--inventory OUT_DIR/hosts --world OUT_DIR/world.json`).

--services is the number of services declared on each node. --drift (default 0.05) scales the
drift mix: at 0.05 about 1% of nodes are offline (at least one when there are 20 nodes or more),
2% of services unhealthy, 1% missing, 1% with failed deployments (a third of them failing 3+
times in a row), 1% with incidents (plus 2% of nodes), 0.5% unmanaged; whenever drift > 0 each
service-level kind of drift occurs at least once. About 10% of services have a deployment
history. --drift 0 gives a nominal homelab.

The output is a pure function of the arguments: one random.Random per part, sorted iteration,
and a fixed observed_at (2026-11-26T10:00:00Z). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

OBSERVED_AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
OBSERVER = {"name": "bench-generator", "version": "1.0.0"}
MINUTE, HOUR, DAY = 60, 3600, 86400

# Rates at the default --drift 0.05; every drift rate scales linearly with --drift.
DEFAULT_DRIFT = 0.05
OFFLINE_NODES = 0.01
UNHEALTHY = 0.02
MISSING = 0.01
FAILED_DEPLOY = 0.01
SERVICE_INCIDENTS = 0.01
NODE_INCIDENTS = 0.02
UNMANAGED = 0.005
HISTORY = 0.10  # services with a plain deployment history; independent of --drift
RUNNING = 0.10  # of those, the share with a deployment running right now
CRITICAL_SERVICES = 0.02
CRITICAL_NODES = 0.05
LOCAL_DEPS = 0.30
REMOTE_DEPS = 0.05

IMAGES = [  # (image, version the observer reports, tier label)
    ("postgres:16.4", "16.4", "data"),
    ("redis:7.2", "7.2.5", "data"),
    ("mariadb:11.4", "11.4.4", "data"),
    ("traefik:v3.2", "3.2.0", "edge"),
    ("nginx:1.27", "1.27.2", "edge"),
    ("prom/prometheus:v2.55.0", "2.55.0", "monitoring"),
    ("grafana/grafana:11.3.0", "11.3.0", "monitoring"),
    ("louislam/uptime-kuma:1.23", "1.23.15", "monitoring"),
    ("eclipse-mosquitto:2.0", "2.0.20", "iot"),
    ("nextcloud:29", "29.0.9", "app"),
    ("gitea/gitea:1.22", "1.22.3", "app"),
    ("vaultwarden/server:1.32.5", "1.32.5", "app"),
    ("jellyfin/jellyfin:10.10.3", "10.10.3", "app"),
    ("linuxserver/sonarr:4.0.11", "4.0.11", "app"),
    ("ghcr.io/immich-app/immich-server:v1.120.0", "v1.120.0", "app"),
    ("ghcr.io/paperless-ngx/paperless-ngx:2.13", "2.13.5", "app"),
]
ROLES = ["storage", "media", "infra", "compute", "edge", "lab", "iot"]
UNHEALTHY_STATUSES = ["failed", "degraded", "stopped", "starting"]
UNMANAGED_NAMES = ["tdarr", "watchtower", "dozzle", "portainer-agent", "netdata", "cadvisor"]
INCIDENT_TITLES = [
    "High memory usage",
    "Disk 92% full",
    "TLS certificate expires in 5 days",
    "Health check flapping",
    "Backup job did not run",
    "Latency above SLO for 15 minutes",
]
NODE_INCIDENT_TITLES = ["SMART errors on /dev/sda", "Kernel soft lockup", "UPS on battery"]


@dataclass
class Service:
    node: str
    name: str
    critical: bool
    image: int  # index into IMAGES
    depends_on: list[str]

    @property
    def id(self) -> str:
        return f"{self.node}/{self.name}"


@dataclass
class Node:
    name: str
    critical: bool
    role: str
    rack: str
    services: list[Service] = field(default_factory=list)


@dataclass
class World:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # keyed <node>/<service>
    deployments: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)


def stamp(seconds_before: int) -> str:
    """An RFC 3339 UTC timestamp, `seconds_before` observed_at."""
    return (OBSERVED_AT - timedelta(seconds=seconds_before)).strftime("%Y-%m-%dT%H:%M:%SZ")


def how_many(total: int, rate: float, at_least: int = 0) -> int:
    """round(total * rate), but at least `at_least` (when rate > 0) and at most `total`."""
    if rate <= 0 or total <= 0:
        return 0
    return min(total, max(at_least, round(total * rate)))


# --- inventory ---------------------------------------------------------------------------------


def build_inventory(rng: random.Random, nodes: int, services: int) -> list[Node]:
    """Nodes with `services` services each; dependencies only point to earlier services."""
    width = max(4, len(str(nodes)))
    swidth = max(4, len(str(services)))
    names = [f"node{i:0{width}d}" for i in range(1, nodes + 1)]
    inventory = []
    for index, name in enumerate(names):
        rack = f"rack-{index // 20 + 1:02d}"
        node = Node(name, rng.random() < CRITICAL_NODES, rng.choice(ROLES), rack)
        local = [f"svc{j:0{swidth}d}" for j in range(1, services + 1)]
        for j, service in enumerate(local):
            deps: list[str] = []
            if j > 0 and rng.random() < LOCAL_DEPS:
                deps = [local[k] for k in sorted(rng.sample(range(j), min(j, rng.randint(1, 2))))]
            if index > 0 and rng.random() < REMOTE_DEPS:
                deps.append(f"{rng.choice(names[:index])}/{rng.choice(local)}")
            image = rng.randrange(len(IMAGES))
            node.services.append(
                Service(name, service, rng.random() < CRITICAL_SERVICES, image, deps)
            )
        inventory.append(node)
    return inventory


def render_node(node: Node, seed: int) -> str:
    """hosts/<node>/services.yaml, written by hand in the fixtures' style."""
    lines = [
        f"# {node.name}: synthetic {node.role} node (bench/generate.py, seed {seed}).",
        "node:",
    ]
    if node.critical:
        lines.append("  critical: true")
    lines += [f"  labels: {{role: {node.role}, rack: {node.rack}}}", ""]
    lines.append("services:" if node.services else "services: {}")
    for service in node.services:
        image, _, tier = IMAGES[service.image]
        lines.append(f"  {service.name}:")
        if service.critical:
            lines.append("    critical: true")
        if service.depends_on:
            lines.append(f"    depends_on: [{', '.join(service.depends_on)}]")
        lines += [f"    image: {image}", f"    labels: {{tier: {tier}}}"]
    return "\n".join(lines) + "\n"


# --- world -------------------------------------------------------------------------------------


def build_world(rng: random.Random, inventory: list[Node], drift: float) -> World:
    """The observed state, with the drift mix planted on shuffled, disjoint sets of subjects."""
    scale = drift / DEFAULT_DRIFT
    world = World()
    offline = observe_nodes(rng, world, inventory, scale)
    online = [s for node in inventory if node.name not in offline for s in node.services]
    for node in inventory:
        if node.name in offline:
            observe_offline_services(rng, world, node)
    order = list(range(len(online)))
    rng.shuffle(order)
    at_least = 1 if drift > 0 else 0
    counts = {
        "unhealthy": how_many(len(online), UNHEALTHY * scale, at_least),
        "missing": how_many(len(online), MISSING * scale, at_least),
        "failed": how_many(len(online), FAILED_DEPLOY * scale, 2 * at_least),
        "incident": how_many(len(online), SERVICE_INCIDENTS * scale, at_least),
        "history": how_many(len(online), HISTORY),
    }
    groups: dict[str, list[Service]] = {}
    start = 0
    for kind, count in counts.items():
        groups[kind] = [online[i] for i in sorted(order[start : start + count])]
        start += count
    observe_services(rng, world, online, groups)
    plant_deployments(rng, world, groups["failed"], groups["history"])
    plant_incidents(rng, world, groups["incident"], inventory, scale)
    plant_unmanaged(
        rng, world, inventory, offline, how_many(len(online), UNMANAGED * scale, at_least)
    )
    return world


def observe_nodes(
    rng: random.Random, world: World, inventory: list[Node], scale: float
) -> set[str]:
    """nodes/<node>.json for every node; returns the names of the offline ones."""
    names = [node.name for node in inventory]
    floor = 1 if scale > 0 and len(names) >= 20 else 0
    offline = set(rng.sample(names, how_many(len(names), OFFLINE_NODES * scale, floor)))
    for name in names:
        if name in offline:
            world.nodes[name] = {"status": "offline", "last_seen": stamp(30 * MINUTE)}
        else:
            world.nodes[name] = {"status": "online", "last_seen": stamp(MINUTE)}
    return offline


def observe_offline_services(rng: random.Random, world: World, node: Node) -> None:
    """An offline node's services: last known as "unknown", or gone from the snapshot."""
    for service in node.services:
        if rng.random() < 0.8:
            version = IMAGES[service.image][1]
            world.services[service.id] = {
                "status": "unknown",
                "since": stamp(30 * MINUTE),
                "version": version,
            }


def observe_services(
    rng: random.Random, world: World, online: list[Service], groups: dict[str, list[Service]]
) -> None:
    """services/<node>/<service>.json for the online nodes' services (none for the missing)."""
    missing = {s.id for s in groups["missing"]}
    unhealthy = {s.id for s in groups["unhealthy"]}
    for service in online:
        if service.id in missing:
            continue
        record = {
            "status": "ok",
            "since": stamp(rng.randint(HOUR, 14 * DAY)),
            "version": IMAGES[service.image][1],
        }
        if service.id in unhealthy:
            record["status"] = rng.choice(UNHEALTHY_STATUSES)
            record["since"] = stamp(rng.randint(2 * MINUTE, 2 * HOUR))
        world.services[service.id] = record


def deployment(service: str, status: str, started: int, minutes: int) -> dict[str, Any]:
    """A deployment record (id assigned later) that started `started` seconds before now."""
    record = {"id": "", "service": service, "status": status, "started_at": stamp(started)}
    if status != "running":
        record["finished_at"] = stamp(started - minutes * MINUTE)
    return record


def plant_deployments(
    rng: random.Random, world: World, failed: list[Service], history: list[Service]
) -> None:
    """Failed runs after a success (some 3+ in a row within 24 h), and plain histories."""
    repeated = {s.id for s in failed[: max(1, len(failed) // 3)]} if failed else set()
    for service in failed:
        failures = rng.randint(3, 5) if service.id in repeated else rng.randint(1, 2)
        started = rng.randint(15 * MINUTE, 5 * HOUR)
        for _ in range(failures):
            world.deployments.append(deployment(service.id, "failed", started, rng.randint(1, 4)))
            started += rng.randint(15 * MINUTE, 90 * MINUTE)
        started += rng.randint(30 * MINUTE, 3 * DAY)
        minutes = rng.randint(2, 5)
        world.deployments.append(deployment(service.id, "succeeded", started, minutes))
        world.services[service.id]["since"] = stamp(started - minutes * MINUTE)
    for service in history:
        if rng.random() < RUNNING:
            started = rng.randint(MINUTE, 9 * MINUTE)
            world.deployments.append(deployment(service.id, "running", started, 0))
        started = rng.randint(2 * HOUR, 7 * DAY)
        for index in range(rng.randint(1, 4)):
            minutes = rng.randint(2, 5)
            world.deployments.append(deployment(service.id, "succeeded", started, minutes))
            if index == 0 and service.id in world.services:
                world.services[service.id]["since"] = stamp(started - minutes * MINUTE)
            started += rng.randint(6 * HOUR, 3 * DAY)
    number_records(world.deployments, "started_at", "dep", daily=True)


def number_records(records: list[dict[str, Any]], key: str, prefix: str, daily: bool) -> None:
    """Sorts records chronologically and numbers them: `dep-20261126-000001`, `inc-000001`."""
    records.sort(key=lambda r: (r[key], r.get("service", r.get("subject", ""))))
    counters: dict[str, int] = {}
    for record in records:
        scope = record[key][:10].replace("-", "") if daily else ""
        counters[scope] = counters.get(scope, 0) + 1
        middle = f"-{scope}" if daily else ""
        record["id"] = f"{prefix}{middle}-{counters[scope]:06d}"


def plant_incidents(
    rng: random.Random,
    world: World,
    services: list[Service],
    inventory: list[Node],
    scale: float,
) -> None:
    """Incidents open, acknowledged or resolved, on a few services and a few nodes."""
    names = [node.name for node in inventory]
    floor = 1 if scale > 0 and len(names) >= 20 else 0
    nodes = sorted(rng.sample(names, how_many(len(names), NODE_INCIDENTS * scale, floor)))
    subjects = [(s.id, INCIDENT_TITLES) for s in services] + [
        (n, NODE_INCIDENT_TITLES) for n in nodes
    ]
    for subject, titles in subjects:
        status = rng.choices(["open", "acknowledged", "resolved"], weights=[4, 2, 4])[0]
        opened = rng.randint(10 * MINUTE, 3 * DAY)
        record = {
            "id": "",
            "subject": subject,
            "status": status,
            "severity": rng.choices(["info", "warning", "critical"], weights=[3, 5, 2])[0],
            "opened_at": stamp(opened),
            "title": rng.choice(titles),
        }
        if status == "resolved":
            record["resolved_at"] = stamp(opened - rng.randint(1, 10) * MINUTE)
        world.incidents.append(record)
    number_records(world.incidents, "opened_at", "inc", daily=False)


def plant_unmanaged(
    rng: random.Random, world: World, inventory: list[Node], offline: set[str], count: int
) -> None:
    """Services running on online nodes that no node's services.yaml declares."""
    online = [node.name for node in inventory if node.name not in offline]
    if not online:
        return
    for index in range(1, count + 1):
        base = UNMANAGED_NAMES[(index - 1) % len(UNMANAGED_NAMES)]
        subject = f"{rng.choice(online)}/{base}-{index:04d}"
        world.services[subject] = {
            "status": "ok",
            "since": stamp(rng.randint(HOUR, 7 * DAY)),
            "version": f"{rng.randint(1, 3)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}",
        }


# --- output ------------------------------------------------------------------------------------


def write(path: str | Path, text: str) -> int:
    """Writes `text` to `path` and returns its size in bytes."""
    data = text.encode()
    with open(path, "wb") as handle:
        handle.write(data)
    return len(data)


def write_inventory(out: Path, inventory: list[Node], seed: int) -> tuple[int, int]:
    """hosts/<node>/services.yaml; returns (files, bytes)."""
    size = 0
    for node in inventory:
        directory = out / "hosts" / node.name
        directory.mkdir(parents=True)
        size += write(directory / "services.yaml", render_node(node, seed))
    return len(inventory), size


def write_world_directory(out: Path, world: World) -> int:
    """The observer's directory layout; returns the number of files written."""
    root = out / "world"
    for sub in ("nodes", "services", "deployments", "incidents"):
        (root / sub).mkdir(parents=True)
    meta = {"observed_at": stamp(0), "observer": OBSERVER}
    write(root / "world.json", json.dumps(meta) + "\n")
    base = str(root)  # plain strings: pathlib costs more than the writes at 100k files
    for name, record in sorted(world.nodes.items()):
        write(f"{base}/nodes/{name}.json", json.dumps(record) + "\n")
    made: set[str] = set()
    for subject, record in sorted(world.services.items()):
        node = subject.partition("/")[0]
        if node not in made:
            os.mkdir(f"{base}/services/{node}")
            made.add(node)
        write(f"{base}/services/{subject}.json", json.dumps(record) + "\n")
    for kind, records in (("deployments", world.deployments), ("incidents", world.incidents)):
        for record in records:
            write(f"{base}/{kind}/{record['id']}.json", json.dumps(record) + "\n")
    return (
        1 + len(world.nodes) + len(world.services) + len(world.deployments) + len(world.incidents)
    )


def write_world_file(out: Path, world: World) -> int:
    """The whole snapshot as one OUT_DIR/world.json; returns the number of files written."""
    document = {
        "observed_at": stamp(0),
        "observer": OBSERVER,
        "nodes": dict(sorted(world.nodes.items())),
        "services": dict(sorted(world.services.items())),
        "deployments": world.deployments,
        "incidents": world.incidents,
    }
    write(out / "world.json", json.dumps(document) + "\n")
    return 1


def prepare(out: Path, force: bool) -> None:
    """Refuses to mix with an earlier output unless --force, which removes it first."""
    earlier = [out / "hosts", out / "world", out / "world.json"]
    present = [path for path in earlier if path.exists()]
    if present and not force:
        sys.exit(f"generate.py: {present[0]} already exists (use --force to replace it)")
    for path in present:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Generate a synthetic homelab for benchmarks.")
    parser.add_argument("out", type=Path, metavar="OUT_DIR")
    parser.add_argument("--nodes", type=int, default=100, help="number of nodes (default 100)")
    parser.add_argument("--services", type=int, default=20, help="services per node (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--drift", type=float, default=DEFAULT_DRIFT, help="drift fraction, 0..1 (default 0.05)"
    )
    parser.add_argument(
        "--single-file", action="store_true", help="write the world as one OUT_DIR/world.json"
    )
    parser.add_argument("--force", action="store_true", help="replace an earlier output")
    args = parser.parse_args(argv)
    if args.nodes < 1 or args.services < 0 or not 0 <= args.drift <= 1:
        parser.error("need --nodes >= 1, --services >= 0 and 0 <= --drift <= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    inventory = build_inventory(random.Random(args.seed), args.nodes, args.services)
    world = build_world(random.Random(f"{args.seed}/world"), inventory, args.drift)
    prepare(args.out, args.force)
    files, size = write_inventory(args.out, inventory, args.seed)
    writer = write_world_file if args.single_file else write_world_directory
    files += writer(args.out, world)
    declared = sum(len(node.services) for node in inventory)
    print(
        f"{args.out}: {len(inventory)} nodes, {declared} services declared, "
        f"{len(world.services)} observed, {len(world.deployments)} deployments, "
        f"{len(world.incidents)} incidents, {files} files, {size} bytes of inventory YAML "
        f"({time.perf_counter() - began:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
