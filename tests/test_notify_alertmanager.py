"""`supervisor notify alertmanager` against a real Alertmanager and its webhook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import wait_for
from support.alertmanager import Alertmanager, running_alertmanager
from support.eventlines import Writer, recommendation
from support.scenarios import evaluate_dir, ok, write_scenario
from typer.testing import CliRunner

from supervisor.cli import app

# Real servers and processes.
pytestmark = pytest.mark.slow

T0, T1, T2 = "2026-11-26T10:00:00Z", "2026-11-26T10:01:00Z", "2026-11-26T10:02:00Z"


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    with running_alertmanager(tmp_path / "am") as server:
        yield server


def notify(url: str, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["notify", "alertmanager", url, "--events",
                                      str(tmp_path / "events.log"), "--state",
                                      str(tmp_path / "notify.json"), *args])
    return result.exit_code, result.stdout, result.stderr


def by_subject(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {alert["labels"]["subject"]: alert for alert in alerts}


def test_an_alert_per_open_recommendation_with_its_labels(alertmanager: Alertmanager,
                                                          tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web"),
                        recommendation("nas01", kind="node", condition="offline_node",
                                       action="failover_review", severity="critical",
                                       rule="node-offline")], summary="unstable")
    code, out, err = notify(alertmanager.url, tmp_path, "--once")
    assert (code, err) == (0, ""), err
    assert "delivered 2 transition(s) of 1 run(s)" in out
    alerts = by_subject(alertmanager.alerts())
    assert set(alerts) == {"nas01/web", "nas01"}
    web = alerts["nas01/web"]
    assert web["labels"] == {
        "alertname": "HomelabUnhealthyService", "subject": "nas01/web", "kind": "service",
        "node": "nas01", "service": "web", "condition": "unhealthy_service",
        "action": "redeploy", "event": "reconcile_required", "severity": "warning",
        "rule": "service-unhealthy", "instance": "lab", "source": "runtime-supervisor"}
    assert web["annotations"]["reason"] == "nas01/web reports status failed"
    assert web["annotations"]["explain"] == "supervisor explain nas01/web"
    assert web["annotations"]["fingerprint"] == next(iter(log.open))
    assert web["startsAt"].startswith("2026-11-26T10:00:00")  # opened, not posted
    assert alerts["nas01"]["labels"]["node"] == "nas01"
    assert "service" not in alerts["nas01"]["labels"]
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 2, what="2 notifications")


def test_resolved_is_delivered_and_a_change_replaces_the_alert(alertmanager: Alertmanager,
                                                               tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db")])
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 0
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 2, what="firing")
    log.run(T1, resolved=["nas01/db"],
            opened=[recommendation("nas01/web", action="diagnostics", event="reconcile_blocked",
                                   severity="critical", condition="failed_deployment",
                                   rule="service-unhealthy")])
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 0
    wait_for(lambda: len(alertmanager.webhook.alerts("resolved")) == 2, what="resolutions")
    resolved = {(a["labels"]["subject"], a["labels"]["action"]): a
                for a in alertmanager.webhook.alerts("resolved")}
    assert set(resolved) == {("nas01/db", "redeploy"), ("nas01/web", "redeploy")}
    assert resolved["nas01/db", "redeploy"]["endsAt"].startswith("2026-11-26T10:01:00")
    active = [a for a in alertmanager.alerts(active="true", silenced="true")
              if a["status"]["state"] == "active" and not a["endsAt"].startswith("2026-11-26")]
    assert [(a["labels"]["subject"], a["labels"]["action"]) for a in active] == [
        ("nas01/web", "diagnostics")]
    assert active[0]["startsAt"].startswith("2026-11-26T10:00:00")  # the episode's opening


def test_alertmanager_down_then_restarted_loses_nothing_and_doubles_nothing(
        alertmanager: Alertmanager, tmp_path: Path) -> None:
    log = Writer(tmp_path / "events.log")
    log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db"),
                        recommendation("nas01/cache")])
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 0
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 3, what="firing")

    alertmanager.stop()
    log.run(T1, resolved=["nas01/db"], opened=[recommendation("nas01/proxy")])
    code, _, err = notify(alertmanager.url, tmp_path, "--once")
    assert code == 1
    assert "Alertmanager unreachable" in err and "kept" in err
    log.run(T2, opened=[recommendation("media01/sonarr")])
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 1

    alertmanager.start()  # it forgot every alert; its notification log survived
    code, out, err = notify(alertmanager.url, tmp_path, "--once")
    assert (code, err) == (0, "")
    assert "delivered 3 transition(s) of 2 run(s)" in out
    firing = {a["labels"]["subject"] for a in alertmanager.alerts()
              if a["status"]["state"] == "active" and "2026-11-26" not in a["endsAt"]}
    assert firing == {"nas01/web", "nas01/cache", "nas01/proxy", "media01/sonarr"}
    wait_for(lambda: {a["labels"]["subject"] for a in alertmanager.webhook.alerts("resolved")}
             == {"nas01/db"}, what="nas01/db resolved")
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) >= 5, what="the new ones")
    # Nothing doubled: every alert fired once, across the restart.
    notify(alertmanager.url, tmp_path, "--once")
    time.sleep(2.5)  # a doubled notification would come within a group_interval (1 s)
    fired = [a["labels"]["subject"] for a in alertmanager.webhook.alerts("firing")]
    assert sorted(fired) == sorted(["nas01/web", "nas01/db", "nas01/cache", "nas01/proxy",
                                    "media01/sonarr"])


def test_a_silence_suppresses_the_notification_while_reposts_go_on(tmp_path: Path) -> None:
    with running_alertmanager(tmp_path / "am", resolve_timeout="3s") as alertmanager:
        log = Writer(tmp_path / "events.log")
        alertmanager.silence("subject=nas01/web")
        log.run(T0, opened=[recommendation("nas01/web"), recommendation("nas01/db")])
        follower = subprocess.Popen(
            [sys.executable, "-m", "supervisor", "notify", "alertmanager", alertmanager.url,
             "--events", str(tmp_path / "events.log"), "--state", str(tmp_path / "n.json"),
             "--follow", "--repost", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 1, what="db fires")
            # Past resolve_timeout: re-posts keep both alerts, the silenced one included, open.
            time.sleep(5)
            states = {a["labels"]["subject"]: a["status"]["state"]
                      for a in alertmanager.alerts()}
            assert states == {"nas01/web": "suppressed", "nas01/db": "active"}
            assert [a["labels"]["subject"] for a in alertmanager.webhook.alerts()] == [
                "nas01/db"]
        finally:
            follower.terminate()
            _, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err


def test_bad_url_and_options_are_usage_errors(tmp_path: Path) -> None:
    code, _, err = notify("ftp://example", tmp_path)
    assert code == 2 and "ftp://example: is not an Alertmanager URL" in err
    code, _, err = notify("http://127.0.0.1:9", tmp_path, "--once", "--follow")
    assert code == 2 and "--once: excludes --follow" in err
    code, _, err = notify("http://127.0.0.1:9", tmp_path, "--repost", "0")
    assert code == 2 and "--repost: must be a positive number" in err


def run(lab: Path, tmp_path: Path, now: str) -> None:
    result = CliRunner().invoke(app, ["run", str(lab), "--once", "--now", now, "-q",
                                      "--events", str(tmp_path / "events.log"),
                                      "--checkpoint", str(tmp_path / "checkpoint.json")])
    assert result.exit_code == 0, result.stderr


def test_end_to_end_with_supervisor_run(alertmanager: Alertmanager, tmp_path: Path) -> None:
    """The log `supervisor run` writes: an alert per open recommendation, each notified once
    across a log rotation (the resync), and resolved when the drift is fixed."""
    lab = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n  db: {}\n"},
                         services={"nas01/web": {"status": "failed"}, "nas01/db": ok()})
    run(lab, tmp_path, "2026-11-26T10:01:00Z")
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 0
    expected = evaluate_dir(lab, now="2026-11-26T10:01:00Z").recommendations
    alerts = alertmanager.alerts()
    assert {(a["labels"]["subject"], a["labels"]["condition"], a["labels"]["action"],
             a["annotations"]["fingerprint"]) for a in alerts} == {
        (r.subject.id, r.condition, r.action, r.fingerprint) for r in expected}
    assert alerts[0]["labels"]["instance"].startswith("lab-")  # run's default instance name
    wait_for(lambda: len(alertmanager.webhook.alerts("firing")) == 1, what="web firing")

    os.rename(tmp_path / "events.log", tmp_path / "events.log.1")  # logrotate, between runs
    run(lab, tmp_path, "2026-11-26T10:02:00Z")  # writes the resync
    assert '"resync":true' in (tmp_path / "events.log").read_text().replace(" ", "")
    code, out, _ = notify(alertmanager.url, tmp_path, "--once")
    assert code == 0 and "delivered" not in out  # a resync is not a transition

    (lab / "world" / "services" / "nas01" / "web.json").write_text(json.dumps(ok()))
    run(lab, tmp_path, "2026-11-26T10:03:00Z")
    assert notify(alertmanager.url, tmp_path, "--once")[0] == 0
    wait_for(lambda: len(alertmanager.webhook.alerts("resolved")) == 1, what="web resolved")
    (resolved,) = alertmanager.webhook.alerts("resolved")
    assert resolved["labels"]["subject"] == "nas01/web"
    assert resolved["endsAt"].startswith("2026-11-26T10:03:00")
    assert len(alertmanager.webhook.alerts("firing")) == 1  # nothing doubled


def test_a_5xx_answer_is_kept_and_retried(tmp_path: Path) -> None:
    """An Alertmanager that answers 503 (starting up, overloaded) has not accepted anything."""
    answers = [503, 200]
    posted: list[bytes] = []

    class Flaky(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            posted.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(answers.pop(0))
            self.end_headers()
            self.wfile.write(b"busy")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        Writer(tmp_path / "events.log").run(T0, opened=[recommendation("nas01/web")])
        code, _, err = notify(url, tmp_path, "--once")
        assert code == 1 and "Alertmanager answered 503" in err
        code, out, _ = notify(url, tmp_path, "--once")
        assert code == 0 and "delivered 1 transition(s) of 1 run(s)" in out
        assert len(posted) == 2 and posted[0] == posted[1]
    finally:
        server.shutdown()
        server.server_close()
