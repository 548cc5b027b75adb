"""`observe prometheus` against a real Prometheus, node_exporter, blackbox_exporter and
Alertmanager on loopback (see tests/support/prometheus.py for the homelab they watch)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import free_port, wait_for
from support.alertmanager import Alertmanager, running_alertmanager
from support.prometheus import Homelab, running_homelab
from typer.testing import CliRunner, Result

from supervisor.cli import app
from supervisor.errors import InputError
from supervisor.observe.prometheus_api import (
    ObservationError,
    active_alerts,
    base_url,
    run_queries,
)
from supervisor.observe.prometheus_map import PrometheusMap, load_map
from supervisor.observe.prometheus_records import Snapshot, build_world, queries

pytestmark = pytest.mark.slow  # real servers: seconds each


def supervisor_command() -> list[str]:
    installed = Path(sys.executable).parent / "supervisor"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "supervisor"]

MAP = """\
labels:
  node: node
services:
  - status: probe_success{job="blackbox"}
    scrape: up{job="blackbox"}
  - status: up{job="node"}
    labels: {service: job}
"""


@pytest.fixture(scope="module")
def homelab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homelab]:
    with running_homelab(tmp_path_factory.mktemp("homelab")) as lab:
        yield lab


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "alertmanager") as server:
        yield server


def map_of(tmp_path: Path, text: str = MAP) -> PrometheusMap:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    return load_map(path, "map.yaml")


def observe(url: str, prometheus_map: PrometheusMap, alertmanager: str | None = None
            ) -> Snapshot:
    now = datetime.now(UTC)
    results = run_queries(url, queries(prometheus_map), now)
    alerts = active_alerts(alertmanager) if alertmanager else None
    return build_world(prometheus_map, results, observed_at=now,
                       observer={"name": "prometheus"}, alerts=alerts)


def test_nodes_and_services_as_prometheus_sees_them(homelab: Homelab, tmp_path: Path) -> None:
    seen = observe(homelab.url, map_of(tmp_path))
    observed_at = seen.world["observed_at"]
    assert seen.nodes == {
        "ghost01": {"status": "offline"},  # never up: no last_seen is made up
        "nas01": {"status": "online", "last_seen": observed_at},
    }
    assert seen.services == {
        "ghost01/node": {"status": "failed"},
        # The blackbox scrape of `api` succeeds (up is 1); its probe, of a dead port, fails.
        "nas01/api": {"status": "failed"},
        "nas01/node": {"status": "ok"},
        "nas01/web": {"status": "ok"},
    }
    assert seen.notes == []


def test_up_of_the_blackbox_scrape_is_checked_against_the_probe(homelab: Homelab,
                                                                tmp_path: Path) -> None:
    assert {series["metric"]["service"]: series["value"][1]
            for series in homelab.query('up{job="blackbox"}')} == {"api": "1", "web": "1"}
    seen = observe(homelab.url, map_of(tmp_path, """\
labels: {node: node}
services:
  - status: up{job="blackbox"}
"""))
    assert seen.services == {"nas01/api": {"status": "failed"}, "nas01/web": {"status": "ok"}}
    assert len(seen.notes) == 1
    assert seen.notes[0].startswith("map.yaml:3:13: services[0].status: up{job=\"blackbox\"} "
                                    "is `up` of a blackbox probe, which is 1 even when the "
                                    "probe fails")


def test_prometheus_unreachable_is_an_observation_failure(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ObservationError) as raised:
        observe(url, map_of(tmp_path))
    assert [str(problem) for problem in raised.value.problems] == [
        f"prometheus {url}: cannot be reached: Connection refused"]


def test_a_server_that_is_not_prometheus(homelab: Homelab, tmp_path: Path) -> None:
    with pytest.raises(ObservationError) as raised:
        observe(homelab.website.url.rstrip("/"), map_of(tmp_path))
    (problem,) = raised.value.problems
    assert str(problem).startswith(f"prometheus {homelab.website.url.rstrip('/')}: answered "
                                   "HTTP 501")


def test_a_query_prometheus_rejects_points_at_its_line(homelab: Homelab, tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        observe(homelab.url, map_of(tmp_path, "services:\n  - status: probe_success{job=\n"))
    (problem,) = raised.value.problems
    assert str(problem).startswith(f"map.yaml:2:13: services[0].status: Prometheus at "
                                   f"{homelab.url} rejected the query: ")
    assert "parse error" in str(problem)


def test_a_query_that_is_not_an_instant_vector(homelab: Homelab, tmp_path: Path) -> None:
    with pytest.raises(InputError) as raised:
        observe(homelab.url, map_of(tmp_path, "nodes:\n  liveness: time()\n"
                                    "  last_seen: time()\n"))
    assert [str(problem) for problem in raised.value.problems] == [
        ("map.yaml:2:13: nodes.liveness: gives a scalar, not an instant vector: one sample per "
        "node or service is needed")]


@pytest.mark.parametrize("text", ["127.0.0.1:9090", "ftp://127.0.0.1", "http://",
                                  "http://127.0.0.1:9090/?x=1"])
def test_a_malformed_address(text: str) -> None:
    with pytest.raises(InputError) as raised:
        base_url(text, "URL")
    assert str(raised.value) == (f"URL: {text!r} is not an http:// or https:// address (like "
                                 "http://127.0.0.1:9090)")


def test_alerts_become_incidents(homelab: Homelab, alertmanager: Alertmanager,
                                 tmp_path: Path) -> None:
    starts = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    alertmanager.post([
        {"labels": {"alertname": "ProbeFailed", "node": "nas01", "service": "api",
                    "severity": "critical"},
         "annotations": {"summary": "api does not answer"}, "startsAt": starts},
        {"labels": {"alertname": "DiskFull", "node": "nas01", "severity": "warning"},
         "annotations": {"summary": "disk almost full"}, "startsAt": starts},
        {"labels": {"alertname": "Watchdog"}, "startsAt": starts},
    ])
    alertmanager.silence("alertname=DiskFull")
    wait_for(lambda: any(alert["status"]["silencedBy"] for alert in alertmanager.alerts()),
             what="Alertmanager to mark the silenced alert")
    seen = observe(homelab.url, map_of(tmp_path), alertmanager.url)
    # Both opened at the same instant: their order is that of their ids, Alertmanager's hashes.
    assert sorted((incident["subject"], incident["alertname"], incident["status"],
                   incident["severity"], incident["title"]) for incident in seen.incidents) == [
        ("nas01", "DiskFull", "acknowledged", "warning", "disk almost full"),
        ("nas01/api", "ProbeFailed", "open", "critical", "api does not answer"),
    ]
    assert {incident["opened_at"][:19] for incident in seen.incidents} == {starts[:19]}
    assert seen.notes == [("alert {alertname=\"Watchdog\"} has no label 'node' naming its "
                          "node; skipped")]


def test_alertmanager_unreachable_is_an_observation_failure(homelab: Homelab,
                                                            tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ObservationError) as raised:
        observe(homelab.url, map_of(tmp_path), url)
    assert [str(problem) for problem in raised.value.problems] == [
        f"alertmanager {url}: cannot be reached: Connection refused"]


def test_a_node_that_goes_down_keeps_when_it_was_last_up(tmp_path: Path) -> None:
    with running_homelab(tmp_path / "lab") as lab:
        before = datetime.now(UTC)
        lab.node_exporter.stop()
        lab.wait_for_value('up{job="node",node="nas01"}', "0", what="Prometheus to see nas01 down")
        seen = observe(lab.url, map_of(tmp_path))
    record = seen.nodes["nas01"]
    assert record["status"] == "offline"
    last_seen = datetime.fromisoformat(record["last_seen"])
    # Up until the exporter stopped, to the evaluation interval (1 s here).
    assert before - timedelta(seconds=30) < last_seen < datetime.fromisoformat(
        seen.world["observed_at"])
    assert seen.services["nas01/node"] == {"status": "failed"}


# -- the command ----------------------------------------------------------------------------

runner = CliRunner()

PROBES_ONLY = """\
labels: {node: node}
services:
  - status: probe_success{job="blackbox"}
    scrape: up{job="blackbox"}
"""


def observe_command(url: str, tmp_path: Path, *extra: str, text: str = PROBES_ONLY) -> Result:
    (tmp_path / "map.yaml").write_text(text)
    return runner.invoke(app, ["observe", "prometheus", url, "--map", str(tmp_path / "map.yaml"),
                               "--world", str(tmp_path / "world"), *extra])


def test_observe_then_eval(homelab: Homelab, alertmanager: Alertmanager, tmp_path: Path
                           ) -> None:
    """Prometheus and Alertmanager to recommendations: the whole way, with real servers."""
    alertmanager.post([{"labels": {"alertname": "ProbeFailed", "node": "nas01",
                                   "service": "api", "severity": "critical"},
                        "annotations": {"summary": "api does not answer"}}])
    observed = observe_command(homelab.url, tmp_path, "--once", "--alertmanager",
                               alertmanager.url)
    assert observed.exit_code == 0, observed.output
    assert observed.stdout == (f"{tmp_path / 'world'}: 2 nodes (1 online), 2 services observed; "
                               "6 files written, 0 removed\n")
    world = tmp_path / "world"
    assert json.loads((world / "nodes" / "ghost01.json").read_text()) == {"status": "offline"}
    assert json.loads((world / "services" / "nas01" / "api.json").read_text()) == {
        "status": "failed"}
    observer = json.loads((world / "world.json").read_text())["observer"]
    assert observer["prometheus"] == homelab.url
    assert observer["alertmanager"] == alertmanager.url
    for node, services in (("nas01", "services: {web: {}, api: {}}\n"),
                           ("ghost01", "services: {}\n")):
        (tmp_path / "hosts" / node).mkdir(parents=True)
        (tmp_path / "hosts" / node / "services.yaml").write_text(services)
    evaluated = runner.invoke(app, ["eval", "--inventory", str(tmp_path / "hosts"),
                                    "--world", str(world), "--format", "json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert sorted((r["subject"]["id"], r["condition"], r["action"])
                  for r in json.loads(evaluated.stdout)["recommendations"]) == [
        ("ghost01", "offline_node", "failover_review"),
        ("nas01/api", "unhealthy_service", "redeploy"),
        ("nas01/api", "unresolved_incident", "review_incident"),
    ]


def test_unreachable_with_once_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = observe_command(url, tmp_path, "--once")
    assert result.exit_code == 2
    assert result.stderr == (f"prometheus {url}: cannot be reached: Connection refused\n"
                             "supervisor: 1 problem found\n")
    assert not (tmp_path / "world").exists()


def test_a_bad_map_exits_2_naming_its_line(tmp_path: Path) -> None:
    result = observe_command("http://127.0.0.1:9", tmp_path, text="nodes: {liveness: 7}\n")
    assert result.exit_code == 2
    assert result.stderr == (f"{tmp_path / 'map.yaml'}:1:19: nodes.liveness: expected string, "
                             "got integer 7\nsupervisor: 1 problem found\n")


def test_a_bad_address_exits_2(tmp_path: Path) -> None:
    result = observe_command("127.0.0.1:9090", tmp_path)
    assert result.exit_code == 2
    assert "URL: '127.0.0.1:9090' is not an http:// or https:// address" in result.stderr


def test_in_the_loop_a_failure_is_reported_and_retried(tmp_path: Path) -> None:
    """Prometheus down: the loop says so and keeps the world as it was; back up: it writes."""
    with running_homelab(tmp_path / "lab") as lab:
        lab.prometheus.stop()
        (tmp_path / "map.yaml").write_text(PROBES_ONLY)
        world = tmp_path / "world"
        errors = tmp_path / "stderr"
        with errors.open("w") as stderr:
            observer = subprocess.Popen(
                [*supervisor_command(), "observe", "prometheus", lab.url, "--map",
                 str(tmp_path / "map.yaml"), "--world", str(world), "--interval", "0.2"],
                stdout=subprocess.DEVNULL, stderr=stderr)
            try:
                refused = f"prometheus {lab.url}: cannot be reached: Connection refused\n"
                wait_for(lambda: errors.read_text().count(refused) >= 2,
                         what="the observer to report Prometheus down twice")
                assert observer.poll() is None  # still running: it retries
                assert not (world / "world.json").exists()
                lab.prometheus.start("/-/ready")
                lab.wait_until_scraped()
                wait_for(lambda: (world / "services" / "nas01" / "web.json").exists(),
                         what="the observer to write the world once Prometheus is back")
            finally:
                observer.send_signal(signal.SIGTERM)
                assert observer.wait(timeout=30) == 0
