"""The real-server fixtures of tests/support work as the integration tests expect."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for
from support.alertmanager import Alertmanager, running_alertmanager

# Real servers and processes.
pytestmark = pytest.mark.slow


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "am") as server:
        yield server


def test_alertmanager_routes_alerts_to_the_webhook_and_keeps_silences(
        alertmanager: Alertmanager) -> None:
    alertmanager.post([{"labels": {"alertname": "Probe", "subject": "a"}}])
    assert [a["labels"]["subject"] for a in alertmanager.alerts()] == ["a"]
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 1, what="the notification")

    alertmanager.silence("subject=b")
    alertmanager.stop()
    alertmanager.start()
    assert alertmanager.alerts() == []  # alerts live in memory only
    alertmanager.post([{"labels": {"alertname": "Probe", "subject": "b"}}])
    (held,) = alertmanager.alerts()
    assert held["status"]["state"] == "suppressed" and held["status"]["silencedBy"]


def test_mosquitto_delivers_to_a_subscriber(tmp_path: Path) -> None:
    from paho.mqtt import publish
    from support.mosquitto import running_mosquitto

    with running_mosquitto(tmp_path / "mqtt") as broker, broker.subscribed("lab/#") as messages:
        publish.single("lab/probe", b"hello", qos=1, hostname="127.0.0.1", port=broker.port)
        wait_for(lambda: messages == [("lab/probe", b"hello")], what="the message")


def test_a_server_that_exits_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    from support.servers import ServerProcess

    server = ServerProcess("broken", tmp_path / "broken.log")
    program = "import sys; sys.stderr.write('no such option'); sys.exit(3)"
    with pytest.raises(AssertionError, match="broken exited: no such option"):
        server.start([sys.executable, "-c", program], lambda: False, "nowhere")
    server.stop()
    assert server.popen is None


def test_stop_ends_a_running_server_and_may_be_repeated(tmp_path: Path) -> None:
    from support.servers import ServerProcess

    server = ServerProcess("sleeper", tmp_path / "sleeper.log")
    server.start([sys.executable, "-c", "import time; time.sleep(600)"], lambda: True, "nowhere")
    popen = server.popen
    assert popen is not None and popen.poll() is None
    server.stop()
    assert popen.returncode is not None and server.popen is None
    server.stop()
