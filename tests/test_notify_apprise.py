"""`supervisor notify apprise` against real receivers: a loopback HTTP server (json://) and
mosquitto (mqtt://)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import free_port, wait_for
from support.alertmanager import Webhook
from support.eventlines import Writer, recommendation
from support.mosquitto import running_mosquitto
from typer.testing import CliRunner

from supervisor.cli import app

T0, T1, T2 = "2026-11-26T10:00:00Z", "2026-11-26T10:01:00Z", "2026-11-26T10:02:00Z"


def notify(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["notify", "apprise", *args, "--events",
                                      str(tmp_path / "events.log"), "--state",
                                      str(tmp_path / "notify.json")])
    return result.exit_code, result.stdout, result.stderr


def test_one_message_per_run_that_changed_something(tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web"),
                        recommendation("nas01", kind="node", condition="offline_node",
                                       action="failover_review", severity="critical",
                                       rule="node-offline", reason="nas01 is offline")],
            summary="unstable")
    log.run(T1, resolved=["nas01"], summary="degraded")
    log.run(T1)  # a run that changed nothing writes nothing, so sends nothing
    sink = Webhook()
    try:
        url = sink.url.replace("http://", "json://")
        code, out, err = notify(tmp_path, url, "--once")
        assert (code, err) == (0, ""), err
        assert "delivered 3 transition(s) of 2 run(s)" in out
        first, second = sink.notifications
        assert first["title"] == "homelab unstable: 2 opened [lab]"
        assert first["message"] == (
            "opened nas01/web: redeploy (warning) nas01/web reports status failed\n"
            "opened nas01: failover_review (critical) nas01 is offline")
        assert first["type"] == "failure"  # the highest severity opened: critical
        assert second["title"] == "homelab degraded: 1 resolved [lab]"
        assert second["message"] == "resolved nas01: failover_review no longer needed " \
            "(offline_node)"
        assert second["type"] == "success"
        assert notify(tmp_path, url, "--once")[0] == 0
        assert len(sink.notifications) == 2  # nothing twice
    finally:
        sink.close()


def test_a_receiver_that_is_down_gets_it_later_and_the_others_once(tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web", severity="info")], summary="degraded")
    port = free_port()
    up = Webhook()
    try:
        code, _, err = notify(tmp_path, up.url.replace("http://", "json://"),
                              f"json://127.0.0.1:{port}/", "--once")
        assert code == 1 and "kept" in err
        assert [m["type"] for m in up.notifications] == ["info"]
        late = Webhook(port)
        try:
            code, _, err = notify(tmp_path, up.url.replace("http://", "json://"),
                                  f"json://127.0.0.1:{port}/", "--once")
            assert (code, err) == (0, "")
            assert len(up.notifications) == 1
            assert [m["title"] for m in late.notifications] == [
                "homelab degraded: 1 opened [lab]"]
        finally:
            late.close()
    finally:
        up.close()


@pytest.mark.slow
def test_mqtt_through_mosquitto(tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web")], summary="degraded")
    with running_mosquitto(tmp_path / "mqtt") as broker, \
            broker.subscribed("homelab/#") as messages:
        code, _, err = notify(tmp_path, f"mqtt://127.0.0.1:{broker.port}/homelab/alerts?qos=1",
                              "--once")
        assert (code, err) == (0, "")
        wait_for(lambda: len(messages) == 1, what="the MQTT message")
    topic, payload = messages[0]
    assert topic == "homelab/alerts"
    assert b"opened nas01/web: redeploy (warning) nas01/web reports status failed" in payload


def test_an_unknown_url_is_an_error_at_start_naming_it(tmp_path: Path) -> None:
    code, _, err = notify(tmp_path, "json://127.0.0.1:9/", "nosuch://x", "--once")
    assert code == 2
    assert "nosuch://x: is not an apprise URL" in err
    assert not (tmp_path / "notify.json").exists()


def test_the_state_file_says_what_is_pending(tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web")])
    assert notify(tmp_path, "json://127.0.0.1:9/", "--once")[0] == 1
    state = json.loads((tmp_path / "notify.json").read_text())
    assert [batch["pending"] for batch in state["outbox"]] == [["json://127.0.0.1:9/"]]


@pytest.mark.slow
@pytest.mark.parametrize("waiting", [[], ["--poll", "0.2"]], ids=["inotify", "poll"])
def test_following_the_log_through_a_rotation(tmp_path: Path, waiting: list[str]) -> None:
    path = tmp_path / "events.log"
    log = Writer(path)
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db")])
    sink = Webhook()
    follower = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "notify", "apprise",
         sink.url.replace("http://", "json://"), "--events", str(path), "--state",
         str(tmp_path / "n.json"), "--follow", *waiting],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: len(sink.notifications) == 1, what="the first message")
        log.run(T1, resolved=["nas01/db"])
        os.rename(path, tmp_path / "events.log.1")
        log.run(T2, resync=True, opened=[recommendation("nas01/proxy")])
        wait_for(lambda: len(sink.notifications) == 3, what="two more messages")
        assert [m["message"].split(":")[0] for m in sink.notifications] == [
            "opened nas01/web", "resolved nas01/db", "opened nas01/proxy"]
    finally:
        follower.terminate()
        _, err = follower.communicate(timeout=30)
        sink.close()
    assert (follower.returncode, err) == (0, b"")
