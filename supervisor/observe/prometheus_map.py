"""The map of `observe prometheus`: which PromQL says what about the homelab, and which labels
name its nodes and services. A YAML file, checked like every file people write here: safe
load, then `schemas/prometheus-map.schema.json`, each problem with its line and column.

Each query keeps where it was written, so that when Prometheus rejects one, the message points
at the line to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from supervisor import schemas
from supervisor.errors import InputError, Problem, dotted, raise_if
from supervisor.loader import YamlDocument, load_yaml

DEFAULT_LIVENESS = 'up{job="node"}'
DEFAULT_NODE_LABEL = "instance"
DEFAULT_SERVICE_LABEL = "service"


def default_last_seen(liveness: str) -> str:
    """The latest evaluation step, over a week, at which the node's liveness was 1.

    A subquery at the global evaluation interval: Prometheus keeps no "last time this was 1",
    and `up` of a node that is down now is 0, not absent, so its own timestamp says nothing.
    """
    return f"max_over_time(timestamp(({liveness}) == 1)[1w:])"


class Labels(NamedTuple):
    node: str
    service: str


class Query(NamedTuple):
    """A PromQL expression and where it came from (the map's line, or a default)."""

    promql: str
    where: Problem  # file, line, column and key; the message is filled in when it fails

    def problem(self, message: str) -> Problem:
        return self.where._replace(message=message)


class ServiceSource(NamedTuple):
    status: Query
    scrape: Query | None
    labels: Labels


class PrometheusMap(NamedTuple):
    display: str
    liveness: Query
    last_seen: Query
    node_labels: Labels
    services: tuple[ServiceSource, ...]
    alert_labels: Labels


def load_map(path: Path, display: str | None = None) -> PrometheusMap:
    """Reads and checks the map; raises `InputError` listing every problem."""
    shown = display or str(path)
    document = load_yaml(path, shown)
    value = document.value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError([document.problem((), "must be a mapping (labels, nodes, services, "
                                                "alerts)")])
    raise_if(schemas.check("prometheus-map", value, document))
    return from_document(value, document)


def from_document(value: dict[str, Any], document: YamlDocument) -> PrometheusMap:
    """The map of a document the schema accepted, defaults filled in."""
    labels = _labels(value.get("labels"), Labels(DEFAULT_NODE_LABEL, DEFAULT_SERVICE_LABEL))
    nodes = value.get("nodes") or {}

    def query(path: tuple[str | int, ...], written: str | None, default: str) -> Query:
        if written is not None:
            return Query(written, document.problem(path, ""))
        return Query(default, Problem(document.display, path=f"{dotted(path)} (default)"))

    liveness = query(("nodes", "liveness"), nodes.get("liveness"), DEFAULT_LIVENESS)
    sources = []
    for index, source in enumerate(value.get("services") or []):
        scrape = source.get("scrape")
        sources.append(ServiceSource(
            status=query(("services", index, "status"), source["status"], ""),
            scrape=None if scrape is None else query(("services", index, "scrape"), scrape, ""),
            labels=_labels(source.get("labels"), labels),
        ))
    return PrometheusMap(
        display=document.display,
        liveness=liveness,
        last_seen=query(("nodes", "last_seen"), nodes.get("last_seen"),
                        default_last_seen(liveness.promql)),
        node_labels=_labels(nodes.get("labels"), labels),
        services=tuple(sources),
        alert_labels=_labels((value.get("alerts") or {}).get("labels"), labels),
    )


def _labels(written: dict[str, str] | None, inherited: Labels) -> Labels:
    written = written or {}
    return Labels(written.get("node", inherited.node), written.get("service", inherited.service))

