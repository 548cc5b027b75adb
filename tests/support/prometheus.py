"""A real Prometheus with node_exporter and blackbox_exporter (Debian's `prometheus`,
`prometheus-node-exporter`, `prometheus-blackbox-exporter`) on 127.0.0.1, for integration tests.

    from support.prometheus import Homelab, running_homelab

    @pytest.fixture(scope="module")
    def homelab(tmp_path_factory) -> Iterator[Homelab]:
        with running_homelab(tmp_path_factory.mktemp("prom")) as lab:
            yield lab

The homelab it builds, every port free and on loopback, storage in the given directory:

- node `nas01`: a node_exporter that answers (`up{job="node"}` is 1);
- node `ghost01`: a node target on a port nothing listens on, so never up, never seen;
- services on `nas01`, probed by the blackbox exporter over HTTP (`job="blackbox"`): `web`
  answers 200 from a server the test process serves, `api` points at a dead port, so its
  `probe_success` is 0 while `up` of the blackbox scrape is 1;
- `nas01/exporter`: the node_exporter scrape itself as a service (`up{job="node"}`).

Prometheus scrapes every second and evaluates every second. `stop()` of one exporter or of
Prometheus itself lets a test watch what the observer makes of it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support import free_port, need, wait_for
from support.servers import ServerProcess, answers_http


class Website:
    """An HTTP server on 127.0.0.1 that answers 200 to every GET: what a probe checks."""

    def __init__(self) -> None:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"ok\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: a probe a second would flood the test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Server:
    """One of the Prometheus programs, run on a free loopback port until `stop()`."""

    def __init__(self, name: str, program: str, package: str, directory: Path,
                 arguments: list[str]) -> None:
        self.name = name
        self.program = need(program, package)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.arguments = arguments
        self.log = directory / f"{name}.log"
        self.process = ServerProcess(name, self.log)

    def start(self, ready: str = "/") -> None:
        self.process.start([self.program, *self.arguments, f"--web.listen-address={self.address}"],
                           lambda: answers_http(self.url + ready), self.url)

    def stop(self) -> None:
        self.process.stop()


BLACKBOX_MODULES = """\
modules:
  http_2xx:
    prober: http
    timeout: 1s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


class Homelab:
    """Prometheus, its exporters and the probed website; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.dead_port = free_port()  # nothing listens here: a failing probe, a node never up
        # The servers first: a missing program skips (or fails) the test before anything runs.
        self.node_exporter = Server(
            "node_exporter", "prometheus-node-exporter", "prometheus-node-exporter", directory,
            # One cheap collector: the tests need the scrape to succeed, not the metrics.
            ["--collector.disable-defaults", "--collector.loadavg"])
        blackbox_config = directory / "blackbox.yml"
        blackbox_config.write_text(BLACKBOX_MODULES)
        self.blackbox = Server(
            "blackbox_exporter", "prometheus-blackbox-exporter", "prometheus-blackbox-exporter",
            directory, [f"--config.file={blackbox_config}"])
        self.config = directory / "prometheus.yml"
        self.prometheus = Server(
            "prometheus", "prometheus", "prometheus", directory,
            [f"--config.file={self.config}", f"--storage.tsdb.path={directory / 'data'}",
             "--log.level=warn"])
        self.url = self.prometheus.url
        self.website = Website()
        self.config.write_text(json.dumps(self._scrape_config(), indent=2))  # JSON is YAML

    def _scrape_config(self) -> dict[str, Any]:
        dead = f"127.0.0.1:{self.dead_port}"
        return {
            "global": {"scrape_interval": "1s", "scrape_timeout": "900ms",
                       "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "node", "static_configs": [
                    {"targets": [self.node_exporter.address], "labels": {"node": "nas01"}},
                    {"targets": [dead], "labels": {"node": "ghost01"}},
                ]},
                {"job_name": "blackbox", "metrics_path": "/probe",
                 "params": {"module": ["http_2xx"]},
                 "static_configs": [
                     {"targets": [self.website.url],
                      "labels": {"node": "nas01", "service": "web"}},
                     {"targets": [f"http://{dead}/"],
                      "labels": {"node": "nas01", "service": "api"}},
                 ],
                 "relabel_configs": [
                     {"source_labels": ["__address__"], "target_label": "__param_target"},
                     {"source_labels": ["__param_target"], "target_label": "instance"},
                     {"target_label": "__address__", "replacement": self.blackbox.address},
                 ]},
            ],
        }

    def start(self) -> None:
        self.node_exporter.start("/metrics")
        self.blackbox.start("/metrics")
        self.prometheus.start("/-/ready")
        self.wait_until_scraped()

    def wait_until_scraped(self) -> None:
        """Until every target has been scraped at least once and each probe has a result."""
        def scraped() -> bool:
            return (len(self.query('up{job="node"}')) == 2
                    and len(self.query('probe_success{job="blackbox"}')) == 2)
        wait_for(scraped, what=f"Prometheus on {self.url} to scrape every target")

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector `promql` gives now, as Prometheus's API returns it."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(address, timeout=5) as response:
                answer = json.loads(response.read())
        except (urllib.error.URLError, OSError):
            return []
        return list(answer["data"]["result"])

    def wait_for_value(self, promql: str, value: str, *, what: str) -> None:
        """Until every series `promql` gives has `value` (and there is at least one)."""
        def reached() -> bool:
            found = self.query(promql)
            return bool(found) and all(series["value"][1] == value for series in found)
        wait_for(reached, what=what)

    def stop(self) -> None:
        for server in (self.prometheus, self.blackbox, self.node_exporter):
            server.stop()
        self.website.close()


@contextlib.contextmanager
def running_homelab(directory: Path) -> Iterator[Homelab]:
    """The homelab, started; everything stopped at the end, even when the test fails."""
    lab = Homelab(directory)
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()

