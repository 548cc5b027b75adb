"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1, for integration tests.

    from support.alertmanager import Alertmanager, running_alertmanager

    @pytest.fixture
    def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
        with running_alertmanager(tmp_path / "am") as server:
            yield server

It listens on a free port, without clustering (`--cluster.listen-address=`), and routes every
alert to a webhook receiver that the test process itself serves on loopback
(`server.webhook.notifications`). Group waits are short so that a notification arrives within a
second or two. `stop()` and `start()` restart it on the same port and storage directory, as a
service restart would: silences and the notification log survive, alerts do not.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from support import free_port, need
from support.servers import ServerProcess, answers_http


class Webhook:
    """An Alertmanager webhook receiver on 127.0.0.1 (or any JSON-posting client's): keeps
    every JSON body it is sent."""

    def __init__(self, port: int = 0) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self.notifications
        lock = self._lock

        class Receiver(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: pytest shows our own failure messages

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every alert of every notification so far, in order; only `status` ones if given."""
        with self._lock:
            found = [alert for notification in self.notifications
                     for alert in notification.get("alerts", [])]
        return [alert for alert in found if status is None or alert.get("status") == status]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class Alertmanager:
    def __init__(self, directory: Path, webhook: Webhook, *, group_by: list[str] | None = None,
                 group_wait: str = "200ms", group_interval: str = "1s",
                 repeat_interval: str = "1h", resolve_timeout: str = "5m") -> None:
        self.program = need("prometheus-alertmanager", "prometheus-alertmanager")
        self.amtool = need("amtool", "prometheus-alertmanager")
        self.directory = directory
        self.webhook = webhook
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        # `...` groups by every label: one notification per alert, easy to count.
        config = {
            "global": {"resolve_timeout": resolve_timeout},
            "route": {"receiver": "test", "group_by": group_by or ["..."],
                      "group_wait": group_wait, "group_interval": group_interval,
                      "repeat_interval": repeat_interval},
            "receivers": [{"name": "test", "webhook_configs": [
                {"url": webhook.url, "send_resolved": True}]}],
        }
        self.config = directory / "alertmanager.yml"
        self.config.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self.log = directory / "alertmanager.log"
        self.process = ServerProcess("Alertmanager", self.log)

    def start(self) -> None:
        self.process.start(
            [self.program, f"--config.file={self.config}",
             f"--storage.path={self.directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=",
             "--log.level=warn"],
            lambda: answers_http(f"{self.url}/-/ready"), self.url)

    def stop(self) -> None:
        """SIGTERM, as systemd would: Alertmanager saves silences and its notification log.

        It logs a notification only once the webhook's answer is in, after the webhook has
        kept it: one a test has just seen arrive is given a moment to be logged, else the
        restarted Alertmanager would rightly send it again."""
        time.sleep(0.5)
        self.process.stop()

    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text.strip() else None

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """`GET /api/v2/alerts`: the alerts it holds now (active, silenced and inhibited)."""
        query = "&".join(f"{key}={value}" for key, value in filters.items())
        return list(self.request("GET", "/api/v2/alerts" + (f"?{query}" if query else "")))

    def post(self, alerts: list[dict[str, Any]]) -> None:
        """`POST /api/v2/alerts`, as Prometheus (or a test pretending to be it) does."""
        self.request("POST", "/api/v2/alerts", alerts)

    def silence(self, *matchers: str, comment: str = "test silence",
                duration: str = "1h") -> str:
        """A silence made with `amtool`, as an operator would; returns its id."""
        result = subprocess.run(
            [self.amtool, f"--alertmanager.url={self.url}", "silence", "add", *matchers,
             f"--comment={comment}", f"--duration={duration}", "--author=test"],
            capture_output=True, text=True, check=True, timeout=30)
        return result.stdout.strip()


@contextlib.contextmanager
def running_alertmanager(directory: Path, **settings: Any) -> Iterator[Alertmanager]:
    """An Alertmanager and its webhook receiver, both stopped at the end, even on failure."""
    webhook = Webhook()
    try:
        server = Alertmanager(directory, webhook, **settings)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        webhook.close()
