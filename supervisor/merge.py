"""The merged document: desired and actual state side by side, one document per subject.

This is the rule authors' API (docs/rules.md describes it): keys are only ever added.
Documents share the inventory's and the world's records rather than copying them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from supervisor.model import WORLD, Inventory, Subject, World
from supervisor.timestamps import format_time, parse_time


class State:
    """Desired and actual state at one evaluation time, indexed for building documents."""

    def __init__(self, inventory: Inventory, world: World, now: datetime,
                 remediations: dict[str, list[dict[str, Any]]] | None = None,
                 maintenance: dict[str, dict[str, str]] | None = None,
                 part: frozenset[str] | None = None) -> None:
        self.inventory = inventory
        self.world = world
        # The nodes whose declarations and services' records were loaded, when only some were
        # (memo.py): documents that show another node's are not to be built. None: all.
        self.part = part
        # Remediation attempts per subject id, oldest first: an input like deployments are.
        self.remediations = remediations or {}
        # Subjects a marking maintenance window covers, as `supervisor remediate` last saw them.
        self._maintenance = maintenance or {}
        self.now = now
        self.now_text = format_time(now)
        self._world_summary = {
            "observed_at": format_time(world.observed_at),
            "observer": world.observer,
        }

        self.deployments: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for deployment in world.deployments:
            self.deployments[deployment["service"]].append(deployment)
        self.incidents: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for incident in world.incidents:
            self.incidents[incident["subject"]].append(incident)

        service_ids = set(inventory.services) | set(world.services) | set(self.deployments)
        service_ids |= {subject for subject in self.incidents if "/" in subject}
        ordered = sorted(service_ids)  # sorted once: a hundred thousand ids
        self.hosted: dict[str, list[str]] = defaultdict(list)
        for service_id in ordered:
            self.hosted[service_id.split("/", 1)[0]].append(service_id)
        node_names = set(inventory.nodes) | set(world.nodes) | set(self.hosted)
        node_names |= {subject for subject in self.incidents if "/" not in subject}

        # Documents share these parts; matchers only read them.
        self._services: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, dict[str, Any]] = {}

        self.subjects: dict[str, list[Subject]] = {
            "service": [Subject("service", service_id) for service_id in ordered],
            "node": [Subject("node", name) for name in sorted(node_names)],
            "world": [WORLD],
        }

    def maintenance_ends(self) -> list[datetime]:
        """When the maintenance windows end: evaluations on either side of one may differ."""
        return [parse_time(mark["until"]) for mark in self._maintenance.values()]

    def observed(self, service: str | None = None, node: str | None = None,
                 record: dict[str, Any] | None = None) -> None:
        """The observer rewrote one record of a service or node that was already known: the
        documents that show it are built again on their next use."""
        if service is not None:
            self.world.services[service] = record  # type: ignore[assignment]
            self._services.pop(service, None)
        if node is not None:
            self.world.nodes[node] = record  # type: ignore[assignment]
            self._nodes.pop(node, None)

    def is_critical(self, subject: Subject) -> bool:
        """Declared critical: the subject itself, or the node it is on."""
        if subject.kind == "world":
            return False
        node = self.inventory.nodes.get(subject.node)
        if node is not None and node.critical:
            return True
        service = self.inventory.services.get(subject.id) if subject.kind == "service" else None
        return service is not None and service.critical

    def maintenance(self, subject: Subject) -> str | None:
        """The marking maintenance window covering the subject (or its node) now, if any."""
        for subject_id in (subject.id, subject.node):
            mark = self._maintenance.get(subject_id)
            if mark is not None and parse_time(mark["until"]) > self.now:
                return mark["window"]
        return None

    def document(self, subject: Subject) -> dict[str, Any]:
        """What a rule's matcher sees when it is evaluated on `subject`."""
        return {key: get(subject) for key, get in self.fields(subject.kind).items()}

    def fields(self, kind: str) -> dict[str, Callable[[Subject], Any]]:
        """The keys of a `kind` subject's document, in order, and how each is found: the
        engine reads one key of every subject's document without building the documents."""
        found: dict[str, Callable[[Subject], Any]] = {
            "now": lambda subject: self.now_text,
            "subject": Subject.to_json,
            "params": lambda subject: {},
            "world": lambda subject: self._world_summary,
        }
        if kind == "service":
            found.update({
                "service": lambda subject: self._service(subject.id),
                "node": lambda subject: self._node(subject.node),
                "dependencies": self._dependencies,
                "deployments": lambda subject: self.deployments.get(subject.id, []),
                "incidents": lambda subject: self.incidents.get(subject.id, []),
                "remediations": lambda subject: self.remediations.get(subject.id, []),
            })
        elif kind == "node":
            found.update({
                "node": lambda subject: self._node(subject.id),
                "services": lambda subject: [self._service(service_id)
                                             for service_id in self.hosted.get(subject.id, [])],
                "incidents": lambda subject: self.incidents.get(subject.id, []),
                "remediations": lambda subject: self.remediations.get(subject.id, []),
            })
        return found

    def _dependencies(self, subject: Subject) -> list[dict[str, Any]]:
        return [
            {**self._service(dependency), "host": self._node(dependency.split("/", 1)[0])}
            for dependency in (self._service(subject.id)["desired"] or {}).get("depends_on", [])
        ]

    def _service(self, service_id: str) -> dict[str, Any]:
        cached = self._services.get(service_id)
        if cached is not None:
            return cached
        node, name = service_id.split("/", 1)
        declared = self.inventory.services.get(service_id)
        service = self._services[service_id] = {
            "id": service_id,
            "node": node,
            "name": name,
            "desired": declared.desired if declared else None,
            "actual": self.world.services.get(service_id),
        }
        return service

    def _node(self, name: str) -> dict[str, Any]:
        cached = self._nodes.get(name)
        if cached is not None:
            return cached
        declared = self.inventory.nodes.get(name)
        node = self._nodes[name] = {
            "name": name,
            "desired": declared.desired if declared else None,
            "actual": self.world.nodes.get(name),
        }
        return node
