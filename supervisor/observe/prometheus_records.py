"""The world as Prometheus (and Alertmanager) see it: from query results to world records.

Pure: `build_world` takes what the queries returned, evaluated at one instant, and gives the
records of one snapshot. Asking is `prometheus_api`'s; writing is the snapshot writer's.

What a sample means:
- node liveness: 1 is `online`, 0 `offline`, anything else `unknown`; several series naming
  one node: the node is online when any of them is 1 (it answered something).
- service status: 1 is `ok`, 0 `failed`, anything else `unknown`; several series naming one
  service (two probes of it, say): the worst wins, failed over unknown over ok.
- a service whose `scrape` is 0 is `unknown`: the exporter that reports it did not answer, so
  nothing is known about the service, which is neither failed nor gone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from supervisor.errors import Problem
from supervisor.model import NAME
from supervisor.observe.prometheus_map import Labels, PrometheusMap, Query
from supervisor.timestamps import format_time, parse_time

# Asked on every observation: a status taken from `up` of a blackbox scrape is checked against it.
PROBE_SUCCESS = "probe_success"
OBSERVER = "prometheus"

_PORT = re.compile(r":\d{1,5}$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WORST = {"ok": 0, "unknown": 1, "failed": 2}
_LIVELIER = {"unknown": 0, "offline": 1, "online": 2}


class Series(NamedTuple):
    """One element of an instant vector: its labels and its value."""

    labels: Mapping[str, str]
    value: float


Results = Mapping[str, list[Series]]  # by PromQL text


class Snapshot(NamedTuple):
    """One observation's records, in the world layout, and what the observer should be told."""

    world: dict[str, Any]  # observed_at, observer
    nodes: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]  # by <node>/<service>
    incidents: list[dict[str, Any]]
    notes: list[str]  # series or alerts that name nothing usable, and map mistakes seen


def queries(prometheus_map: PrometheusMap) -> list[Query]:
    """Every query one observation runs, each once, in a fixed order."""
    wanted = [prometheus_map.liveness, prometheus_map.last_seen]
    for source in prometheus_map.services:
        wanted.append(source.status)
        if source.scrape is not None:
            wanted.append(source.scrape)
    if prometheus_map.services:
        wanted.append(Query(PROBE_SUCCESS, Problem(path="the check of statuses taken from up")))
    unique: dict[str, Query] = {}
    for query in wanted:
        unique.setdefault(query.promql, query)
    return list(unique.values())


def build_world(prometheus_map: PrometheusMap, results: Results, *, observed_at: datetime,
                observer: dict[str, Any], alerts: list[dict[str, Any]] | None = None
                ) -> Snapshot:
    """The snapshot the results describe; `alerts` (Alertmanager's, when asked) become
    incidents. A node that is not online and whose last_seen the query does not reach gets
    none here: the writer keeps the previous snapshot's, and a node never seen up has none."""
    notes: set[str] = set()
    for query in (prometheus_map.liveness, *(source.status for source in prometheus_map.services)):
        if query.promql in results and not results[query.promql]:
            # Not an error (a homelab may have no such series yet), but the likeliest cause is a
            # typo in a job name, which would otherwise look like every node or service gone.
            notes.add(str(query.problem(f"{query.promql} gives no series: nothing is observed "
                                        "through it (is the job or metric name right?)")))
    nodes = _nodes(prometheus_map, results, observed_at, notes)
    services = _services(prometheus_map, results, notes)
    incidents = _incidents(alerts or [], prometheus_map.alert_labels, notes)
    world = {"observed_at": format_time(observed_at), "observer": observer}
    return Snapshot(world, nodes, services, incidents, sorted(notes))


def node_name(value: str) -> str:
    """A node as a label names it: `nas01:9100` (an `instance`) is node `nas01`."""
    return _PORT.sub("", value).lower()


def _named(series: Series, labels: Labels, what: str, notes: set[str]) -> str | None:
    """The node (`what="node"`) or service name a series carries, or None with a note."""
    label = labels.node if what == "node" else labels.service
    value = series.labels.get(label)
    if value is None:
        notes.add(f"{_shown(series)} has no label {label!r} naming its {what}; skipped")
        return None
    name = node_name(value) if what == "node" else value.lower()
    if not NAME.fullmatch(name):
        notes.add(f"{_shown(series)}: {label}={value!r} is not a valid {what} name "
                  "(lowercase letters, digits, '_', '.', '-'); skipped")
        return None
    return name


def _shown(series: Series) -> str:
    """A series as PromQL writes it; an alert (`__name__` ALERTS) as `alert` and its labels."""
    metric = series.labels.get("__name__", "")
    pairs = ",".join(f'{key}="{value}"' for key, value in sorted(series.labels.items())
                     if key != "__name__")
    if metric == "ALERTS":
        return f"alert {{{pairs}}}"
    return f"series {metric}{{{pairs}}}"


def _nodes(prometheus_map: PrometheusMap, results: Results, observed_at: datetime,
           notes: set[str]) -> dict[str, dict[str, Any]]:
    labels = prometheus_map.node_labels
    status: dict[str, str] = {}
    for series in results.get(prometheus_map.liveness.promql, []):
        name = _named(series, labels, "node", notes)
        if name is None:
            continue
        seen = "online" if series.value == 1 else "offline" if series.value == 0 else "unknown"
        if _LIVELIER[seen] > _LIVELIER.get(status.get(name, ""), -1):
            status[name] = seen
    last_seen: dict[str, datetime] = {}
    for series in results.get(prometheus_map.last_seen.promql, []):
        name = _named(series, labels, "node", notes)
        if name is not None and (moment := _moment(series.value)) is not None:
            last_seen[name] = max(moment, last_seen.get(name, moment))
    records: dict[str, dict[str, Any]] = {}
    # A node that the last_seen query knows but liveness no longer lists (its target was
    # removed, or went stale) was up once and is not now.
    for name in sorted(status.keys() | last_seen.keys()):
        state = status.get(name, "offline")
        record: dict[str, Any] = {"status": state}
        if state == "online":
            record["last_seen"] = format_time(observed_at)
        elif name in last_seen:
            # A node never seen up has no last_seen at all: inventing one would be a lie.
            record["last_seen"] = format_time(min(last_seen[name], observed_at))
        records[name] = record
    return records


def _moment(seconds: float) -> datetime | None:
    """A Unix time as Prometheus gives it (milliseconds are its resolution)."""
    if not 0 < seconds < 253402300800:  # NaN, and years past 9999, are no time
        return None
    return _EPOCH + timedelta(milliseconds=round(seconds * 1000))


def _services(prometheus_map: PrometheusMap, results: Results,
              notes: set[str]) -> dict[str, dict[str, Any]]:
    probes = {(series.labels.get("job"), series.labels.get("instance")): series.value
              for series in results.get(PROBE_SUCCESS, [])}
    status: dict[str, str] = {}
    for source in prometheus_map.services:
        found: dict[str, str] = {}
        for series in results.get(source.status.promql, []):
            value = series.value
            scraped = (series.labels.get("job"), series.labels.get("instance"))
            if series.labels.get("__name__") == "up" and scraped in probes:
                # `up` of a blackbox scrape is 1 whenever the exporter answers, even when
                # the probe it ran failed: the probe's own result is what the service is.
                value = min(value, probes[scraped])
                notes.add(str(source.status.problem(
                    f"{source.status.promql} is `up` of a blackbox probe, which is 1 even when "
                    f"the probe fails; used probe_success of job {scraped[0]!r} instead "
                    "(write probe_success in the map)")))
            if (service := _service_id(series, source.labels, notes)) is not None:
                found[service] = _worse(found.get(service), _status(value))
        if source.scrape is not None:
            for series in results.get(source.scrape.promql, []):
                service = _service_id(series, source.labels, notes)
                if service is not None and series.value != 1:
                    found[service] = "unknown"  # the exporter did not answer: nothing is known
        for service, state in found.items():
            status[service] = _worse(status.get(service), state)
    return {service: {"status": status[service]} for service in sorted(status)}


def _service_id(series: Series, labels: Labels, notes: set[str]) -> str | None:
    node = _named(series, labels, "node", notes)
    service = _named(series, labels, "service", notes)
    return None if node is None or service is None else f"{node}/{service}"


def _status(value: float) -> str:
    return "ok" if value == 1 else "failed" if value == 0 else "unknown"


def _worse(old: str | None, new: str) -> str:
    return new if old is None or _WORST[new] > _WORST[old] else old


SEVERITIES = {"critical": "critical", "page": "critical", "error": "critical",
              "warning": "warning", "warn": "warning",
              "info": "info", "notice": "info", "none": "info"}


def _incidents(alerts: list[dict[str, Any]], labels: Labels,
               notes: set[str]) -> list[dict[str, Any]]:
    """Alertmanager's alerts that are not resolved: silenced ones are `acknowledged` (someone
    said they know), the others `open`, inhibited ones too (their cause fires elsewhere)."""
    incidents = []
    for alert in alerts:
        alert_labels = alert.get("labels") or {}
        shown = Series({"__name__": "ALERTS", **alert_labels}, 0)
        node = _named(shown, labels, "node", notes)
        if node is None:
            continue
        subject = node
        if labels.service in alert_labels:
            service = _named(shown, labels, "service", notes)
            if service is None:
                continue
            subject = f"{node}/{service}"
        state = alert.get("status") or {}
        annotations = alert.get("annotations") or {}
        name = alert_labels.get("alertname", "alert")
        try:
            opened_at = format_time(parse_time(_trim_fraction(str(alert.get("startsAt")))))
        except ValueError:
            notes.add(f"alert {name} on {subject}: startsAt {alert.get('startsAt')!r} is not a "
                      "time; skipped")
            continue
        incidents.append({
            "id": f"alertmanager-{alert.get('fingerprint', '')}",
            "subject": subject,
            "status": "acknowledged" if state.get("silencedBy") else "open",
            "severity": SEVERITIES.get(str(alert_labels.get("severity", "")).lower(), "warning"),
            "opened_at": opened_at,
            "title": str(annotations.get("summary") or name),
            "alertname": name,
            "labels": dict(sorted(alert_labels.items())),
        })
    return sorted(incidents, key=lambda incident: (incident["opened_at"], incident["id"]))


def _trim_fraction(text: str) -> str:
    """Alertmanager writes nanoseconds; a datetime holds microseconds."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)
