"""`observe prometheus` without servers: the map file, and query results to world records."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.scenarios import ScenarioFactory, evaluate_dir, keys

from supervisor.errors import InputError
from supervisor.observe.prometheus_map import PrometheusMap, load_map
from supervisor.observe.prometheus_records import (
    PROBE_SUCCESS,
    Series,
    Snapshot,
    build_world,
    queries,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
OBSERVER = {"name": "prometheus", "version": "test"}

BLACKBOX_MAP = """\
labels:
  node: node
nodes:
  liveness: up{job="node"}
services:
  - status: probe_success{job="blackbox"}
    scrape: up{job="blackbox"}
"""


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prometheus.yaml"
    path.write_text(text)
    return path


def map_of(tmp_path: Path, text: str = BLACKBOX_MAP) -> PrometheusMap:
    return load_map(write_map(tmp_path, text), "prometheus.yaml")


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(InputError) as raised:
        map_of(tmp_path, text)
    return [str(problem) for problem in raised.value.problems]


def series(value: float, **labels: str) -> Series:
    return Series(labels, value)


def world(prometheus_map: PrometheusMap, results: dict[str, list[Series]], **options: Any
          ) -> Snapshot:
    return build_world(prometheus_map, results, observed_at=NOW, observer=OBSERVER, **options)


# -- the map file ---------------------------------------------------------------------------


def test_an_empty_map_observes_nodes_by_up_of_job_node(tmp_path: Path) -> None:
    empty = map_of(tmp_path, "{}\n")
    assert empty.liveness.promql == 'up{job="node"}'
    assert empty.last_seen.promql == 'max_over_time(timestamp((up{job="node"}) == 1)[1w:])'
    assert empty.node_labels == ("instance", "service")
    assert empty.services == ()
    assert [query.promql for query in queries(empty)] == [empty.liveness.promql,
                                                          empty.last_seen.promql]


def test_last_seen_follows_a_written_liveness(tmp_path: Path) -> None:
    written = map_of(tmp_path, "nodes:\n  liveness: up{job=\"hosts\"}\n")
    assert written.last_seen.promql == 'max_over_time(timestamp((up{job="hosts"}) == 1)[1w:])'


def test_labels_are_inherited_and_overridden(tmp_path: Path) -> None:
    layered = map_of(tmp_path, """\
labels: {node: host, service: app}
nodes: {labels: {node: hostname}}
services:
  - status: up{job="db"}
    labels: {service: job}
alerts: {labels: {service: svc}}
""")
    assert layered.node_labels == ("hostname", "app")
    assert layered.services[0].labels == ("host", "job")
    assert layered.alert_labels == ("host", "svc")


def test_map_errors_name_file_line_and_column(tmp_path: Path) -> None:
    assert problems(tmp_path, """\
nodes:
  livenes: up
services:
  - staus: probe_success
labels: {node: "bad label"}
""") == [
        "prometheus.yaml:2:3: nodes.livenes: unknown key 'livenes' (did you mean 'liveness'?)",
        "prometheus.yaml:4:5: services[0]: missing required key 'status'",
        "prometheus.yaml:4:5: services[0].staus: unknown key 'staus' (did you mean 'status'?)",
        ("prometheus.yaml:5:16: labels.node: value 'bad label' is not a Prometheus label name "
        "(letters, digits and '_', not starting with a digit)"),
    ]


def test_a_map_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert problems(tmp_path, "- up\n") == [
        "prometheus.yaml:1:1: must be a mapping (labels, nodes, services, alerts)"]


def test_a_duplicate_key_in_the_map(tmp_path: Path) -> None:
    (problem,) = problems(tmp_path, "nodes:\n  liveness: a\n  liveness: b\n")
    assert problem.startswith("prometheus.yaml:3:3: nodes.liveness: duplicate key 'liveness'")


def test_queries_remember_where_they_were_written(tmp_path: Path) -> None:
    written = map_of(tmp_path)
    assert str(written.services[0].status.problem("rejected")) == (
        "prometheus.yaml:6:13: services[0].status: rejected")
    assert str(written.last_seen.problem("rejected")) == (
        "prometheus.yaml: nodes.last_seen (default): rejected")


def test_each_query_runs_once(tmp_path: Path) -> None:
    twice = map_of(tmp_path, """\
services:
  - status: up{job="node"}
  - status: up{job="node"}
    scrape: up{job="node"}
""")
    assert [query.promql for query in queries(twice)] == [
        'up{job="node"}', 'max_over_time(timestamp((up{job="node"}) == 1)[1w:])', PROBE_SUCCESS]


# -- nodes ----------------------------------------------------------------------------------


def test_nodes_online_offline_and_never_seen(tmp_path: Path) -> None:
    prometheus_map = map_of(tmp_path)
    seen = world(prometheus_map, {
        'up{job="node"}': [series(1, node="nas01"), series(0, node="nas02"),
                           series(0, node="ghost01")],
        prometheus_map.last_seen.promql: [series(1795686000, node="nas01"),
                                          series(1795668000.25, node="nas02")],
    })
    assert seen.nodes == {
        # A node never seen up has no last_seen: none is invented.
        "ghost01": {"status": "offline"},
        # Online: seen now, at the instant the queries were evaluated.
        "nas01": {"status": "online", "last_seen": "2026-11-26T10:00:00Z"},
        "nas02": {"status": "offline", "last_seen": "2026-11-26T04:40:00.25Z"},
    }
    assert seen.notes == []


def test_a_node_known_only_to_last_seen_is_offline(tmp_path: Path) -> None:
    prometheus_map = map_of(tmp_path)
    seen = world(prometheus_map, {
        prometheus_map.last_seen.promql: [series(1795668000, node="nas02")]})
    assert seen.nodes == {"nas02": {"status": "offline", "last_seen": "2026-11-26T04:40:00Z"}}


def test_a_node_is_online_when_any_of_its_series_is_up(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {'up{job="node"}': [
        series(0, node="nas01", instance="a"), series(1, node="nas01", instance="b"),
        series(math.nan, node="nas02"), series(0, node="nas03"), series(2, node="nas03")]})
    assert {name: record["status"] for name, record in seen.nodes.items()} == {
        "nas01": "online", "nas02": "unknown", "nas03": "offline"}


def test_instance_names_the_node_without_its_port(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path, "{}\n"), {'up{job="node"}': [
        series(1, instance="NAS01:9100"), series(1, instance="192.168.1.7:9100"),
        series(1, instance="[::1]:9100")]})
    assert list(seen.nodes) == ["192.168.1.7", "nas01"]
    assert seen.notes == [
        ("series {instance=\"[::1]:9100\"}: instance='[::1]:9100' is not a valid node name "
        "(lowercase letters, digits, '_', '.', '-'); skipped")]


def test_a_series_without_the_node_label_is_skipped_with_a_note(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {'up{job="node"}': [
        series(1, __name__="up", job="node", instance="x:1")]})
    assert seen.nodes == {}
    assert seen.notes == [
        "series up{instance=\"x:1\",job=\"node\"} has no label 'node' naming its node; skipped"]


# -- services -------------------------------------------------------------------------------


def blackbox(value: float, service: str, **labels: str) -> Series:
    return series(value, __name__="probe_success", job="blackbox", node="nas01",
                  instance=f"http://{service}/", service=service, **labels)


def test_probe_success_gives_the_status_and_a_failed_scrape_gives_unknown(tmp_path: Path
                                                                           ) -> None:
    seen = world(map_of(tmp_path), {
        'probe_success{job="blackbox"}': [blackbox(1, "web"), blackbox(0, "api")],
        'up{job="blackbox"}': [series(1, node="nas01", service="web"),
                               series(1, node="nas01", service="api"),
                               # the exporter did not answer for this one: no probe_success
                               series(0, node="nas01", service="mail")],
    })
    assert seen.services == {"nas01/api": {"status": "failed"},
                             "nas01/mail": {"status": "unknown"},
                             "nas01/web": {"status": "ok"}}


def test_up_of_a_blackbox_scrape_is_not_the_probe(tmp_path: Path) -> None:
    """The pitfall: `up` is 1 when the blackbox exporter answered, whatever the probe found."""
    prometheus_map = map_of(tmp_path, """\
labels: {node: node}
services:
  - status: up{job="blackbox"}
""")
    up = [Series({**blackbox(1, name).labels, "__name__": "up"}, 1) for name in ("web", "api")]
    seen = world(prometheus_map, {'up{job="blackbox"}': up,
                                  PROBE_SUCCESS: [blackbox(1, "web"), blackbox(0, "api")]})
    assert seen.services == {"nas01/api": {"status": "failed"}, "nas01/web": {"status": "ok"}}
    assert seen.notes == [
        ("prometheus.yaml:3:13: services[0].status: up{job=\"blackbox\"} is `up` of a blackbox "
        "probe, which is 1 even when the probe fails; used probe_success of job 'blackbox' "
        "instead (write probe_success in the map)")]


def test_up_of_an_ordinary_scrape_is_the_status(tmp_path: Path) -> None:
    prometheus_map = map_of(tmp_path, """\
labels: {node: node}
services:
  - status: up{job=~"db|cache"}
    labels: {service: job}
""")
    seen = world(prometheus_map, {'up{job=~"db|cache"}': [
        series(1, __name__="up", job="db", node="nas01", instance="nas01:5432"),
        series(0, __name__="up", job="cache", node="nas01", instance="nas01:6379")],
        PROBE_SUCCESS: [blackbox(0, "web")]})
    assert seen.services == {"nas01/cache": {"status": "failed"}, "nas01/db": {"status": "ok"}}
    assert seen.notes == []


def test_the_worst_series_of_a_service_wins(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {'probe_success{job="blackbox"}': [
        blackbox(1, "web", probe="http"), blackbox(0, "web", probe="tcp"),
        blackbox(1, "api", probe="http"), blackbox(math.nan, "api", probe="tcp"),
        blackbox(1, "db", probe="http"), blackbox(1, "db", probe="tcp")]})
    assert seen.services == {"nas01/api": {"status": "unknown"},
                             "nas01/db": {"status": "ok"},
                             "nas01/web": {"status": "failed"}}


def test_service_names_are_lowercased_and_checked(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {'probe_success{job="blackbox"}': [
        blackbox(1, "Nextcloud"), blackbox(1, "my app")]})
    assert list(seen.services) == ["nas01/nextcloud"]
    assert len(seen.notes) == 1
    assert "service='my app' is not a valid service name" in seen.notes[0]


# -- incidents ------------------------------------------------------------------------------


def alert(fingerprint: str, silenced: bool = False, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": "ProbeFailed", **labels},
        "annotations": {"summary": f"{labels.get('service', 'node')} is down"},
        "startsAt": "2026-11-26T09:58:01.123456789Z",
        "fingerprint": fingerprint,
        "status": {"state": "suppressed" if silenced else "active",
                   "silencedBy": ["s1"] if silenced else [], "inhibitedBy": []},
    }


def test_alerts_become_incidents_on_the_subject_their_labels_name(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {}, alerts=[
        alert("b2", node="nas01", service="api", severity="critical"),
        alert("a1", silenced=True, node="nas01", severity="page"),
        alert("c3", job="blackbox"),
        alert("d4", node="nas01", service="Bad Name"),
    ])
    assert seen.incidents == [
        {"id": "alertmanager-a1", "subject": "nas01", "status": "acknowledged",
         "severity": "critical", "opened_at": "2026-11-26T09:58:01.123456Z",
         "title": "node is down", "alertname": "ProbeFailed",
         "labels": {"alertname": "ProbeFailed", "node": "nas01", "severity": "page"}},
        {"id": "alertmanager-b2", "subject": "nas01/api", "status": "open",
         "severity": "critical", "opened_at": "2026-11-26T09:58:01.123456Z",
         "title": "api is down", "alertname": "ProbeFailed",
         "labels": {"alertname": "ProbeFailed", "node": "nas01", "service": "api",
                    "severity": "critical"}},
    ]
    assert seen.notes == [
        ("alert {alertname=\"ProbeFailed\",job=\"blackbox\"} has no label 'node' naming "
        "its node; skipped"),
        ("alert {alertname=\"ProbeFailed\",node=\"nas01\",service=\"Bad Name\"}: "
        "service='Bad Name' is not a valid service name (lowercase letters, digits, '_', '.', "
        "'-'); skipped"),
    ]


def test_severity_without_a_known_label_is_a_warning(tmp_path: Path) -> None:
    seen = world(map_of(tmp_path), {}, alerts=[alert("a", node="n1"),
                                                 alert("b", node="n2", severity="info")])
    assert [incident["severity"] for incident in seen.incidents] == ["warning", "info"]


# -- the whole snapshot ---------------------------------------------------------------------


def test_the_snapshot_is_the_same_whatever_order_the_series_came_in(tmp_path: Path) -> None:
    prometheus_map = map_of(tmp_path)
    results = {
        'up{job="node"}': [series(1, node="nas01"), series(0, node="nas02")],
        'probe_success{job="blackbox"}': [blackbox(1, "web"), blackbox(0, "api")],
    }
    alerts = [alert("b", node="nas02"), alert("a", node="nas01")]
    forward = world(prometheus_map, results, alerts=alerts)
    backward = world(prometheus_map, {key: value[::-1] for key, value in results.items()},
                     alerts=alerts[::-1])
    assert forward == backward
    assert forward.world == {"observed_at": "2026-11-26T10:00:00Z", "observer": OBSERVER}
    assert list(forward.services) == sorted(forward.services)


def test_eval_reads_a_node_never_seen_up(scenario: ScenarioFactory) -> None:
    """What the observer writes for a node Prometheus never saw up, the engine reads."""
    root = scenario({"ghost01": "services: {}\n"}, nodes={"ghost01": {"status": "offline"}})
    evaluation = evaluate_dir(root)
    assert keys(evaluation) == {
        ("node", "ghost01", "offline_node", "reconcile_required", "failover_review")}
    assert evaluation.recommendations[0].reason == "ghost01 is offline, last seen never"


def test_the_documented_map_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "observe.md").read_text()
    (example,) = [block for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
                  if block.startswith("# prometheus-map.yaml")]
    documented = map_of(tmp_path, example)
    assert documented.node_labels == ("node", "service")
    assert [source.status.promql for source in documented.services] == [
        'probe_success{job="blackbox"}', 'up{job=~"postgres|redis"}']
    assert documented.last_seen.promql in text  # the default, as the comment shows it


def test_a_query_that_gives_no_series_is_noted(tmp_path: Path) -> None:
    prometheus_map = map_of(tmp_path)
    seen = world(prometheus_map, {'up{job="node"}': [], 'probe_success{job="blackbox"}': [],
                                  'up{job="blackbox"}': []})
    assert (seen.nodes, seen.services) == ({}, {})
    assert seen.notes == [
        ("prometheus.yaml:4:13: nodes.liveness: up{job=\"node\"} gives no series: nothing is "
        "observed through it (is the job or metric name right?)"),
        ("prometheus.yaml:6:13: services[0].status: probe_success{job=\"blackbox\"} gives no "
        "series: nothing is observed through it (is the job or metric name right?)"),
    ]


@pytest.mark.parametrize("timeout", ["0", "-1", "inf", "nan"])
def test_a_timeout_out_of_range_exits_2(tmp_path: Path, timeout: str) -> None:
    from typer.testing import CliRunner

    from supervisor.cli import app

    result = CliRunner().invoke(app, ["observe", "prometheus", "http://127.0.0.1:9",
                                      "--map", str(write_map(tmp_path, "{}\n")),
                                      "--world", str(tmp_path / "world"), "--timeout", timeout])
    assert result.exit_code == 2
    assert result.stderr == ("--timeout: must be a number of seconds between 0 and 3600\n"
                             "supervisor: 1 problem found\n")
    assert not (tmp_path / "world").exists()


# -- through the snapshot writer ------------------------------------------------------------


def write(tmp_path: Path, results: dict[str, list[Series]], when: datetime,
          alerts: list[dict[str, Any]] | None = None) -> Path:
    from supervisor.observe.prometheus import observation
    from supervisor.observe.snapshot import write_snapshot

    seen = build_world(map_of(tmp_path), results, observed_at=when, observer=OBSERVER,
                       alerts=alerts)
    write_snapshot(tmp_path / "world", observation(seen, when, OBSERVER,
                                                   incidents=alerts is not None))
    return tmp_path / "world"


def record(world: Path, relative: str) -> Any:
    return json.loads((world / relative).read_text())


def test_a_node_down_past_the_query_keeps_the_last_seen_already_written(tmp_path: Path) -> None:
    world = write(tmp_path, {'up{job="node"}': [series(1, node="nas01")]}, NOW)
    later = NOW + timedelta(days=9)
    write(tmp_path, {'up{job="node"}': [series(0, node="nas01")]}, later)  # no last_seen sample
    assert record(world, "nodes/nas01.json") == {"status": "offline",
                                                 "last_seen": "2026-11-26T10:00:00Z"}


def test_a_node_only_services_name_is_unknown(tmp_path: Path) -> None:
    world = write(tmp_path, {'probe_success{job="blackbox"}': [blackbox(1, "web")]}, NOW)
    assert record(world, "nodes/nas01.json") == {"status": "unknown"}
    assert record(world, "services/nas01/web.json") == {"status": "ok"}


def test_incidents_are_replaced_only_when_alertmanager_was_asked(tmp_path: Path) -> None:
    world = write(tmp_path, {}, NOW, alerts=[alert("a1", node="nas01")])
    assert record(world, "incidents/alertmanager-a1.json")["status"] == "open"
    write(tmp_path, {}, NOW + timedelta(minutes=1))  # without --alertmanager: left alone
    assert (world / "incidents" / "alertmanager-a1.json").exists()
    write(tmp_path, {}, NOW + timedelta(minutes=2), alerts=[])  # resolved: gone
    assert not (world / "incidents" / "alertmanager-a1.json").exists()
