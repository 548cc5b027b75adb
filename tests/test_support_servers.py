"""The real-server fixtures of tests/support work as the integration tests expect."""

from __future__ import annotations

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
