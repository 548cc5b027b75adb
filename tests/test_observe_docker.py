"""How `observe docker` turns what the engine says about containers into service records
(pure: no engine here; tests/test_observe_docker_engine.py runs against a real one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from supervisor.containers import image_tag, image_version
from supervisor.observe.docker import (
    container_record,
    container_status,
    parse_engine_time,
    service_name,
    service_records,
)


@pytest.mark.parametrize(("state", "status"), [
    ({"Status": "running"}, "ok"),
    ({"Status": "running", "Health": {"Status": "healthy"}}, "ok"),
    ({"Status": "running", "Health": {"Status": "unhealthy"}}, "degraded"),
    ({"Status": "running", "Health": {"Status": "starting"}}, "starting"),
    ({"Status": "created"}, "starting"),
    ({"Status": "configured"}, "starting"),
    ({"Status": "restarting", "ExitCode": 1}, "failed"),
    ({"Status": "exited", "ExitCode": 0}, "stopped"),
    ({"Status": "exited", "ExitCode": 137}, "failed"),
    ({"Status": "stopped", "ExitCode": 0}, "stopped"),
    ({"Status": "dead", "ExitCode": 0}, "failed"),
    ({"Status": "paused"}, "degraded"),
    ({"Status": "removing"}, "unknown"),
])
def test_state_and_health_become_a_status(state: dict[str, Any], status: str) -> None:
    assert container_status(state) == status


@pytest.mark.parametrize(("labels", "name", "service"), [
    ({"com.docker.compose.service": "web"}, "/app_web_1", "web"),
    ({"homelab.service": "photos-db", "com.docker.compose.service": "db"}, "/x", "photos-db"),
    ({"homelab.service": "backup"}, "/nightly", "backup"),
    ({}, "/Pi-Hole", "pi-hole"),
    ({}, "/" + "x" * 64, None),
    ({"homelab.service": "no spaces"}, "/ok", None),
])
def test_the_service_a_container_answers_to(labels: dict[str, str], name: str,
                                             service: str | None) -> None:
    assert service_name(labels, name) == service


@pytest.mark.parametrize(("reference", "tag"), [
    ("nextcloud:29", "29"),
    ("nextcloud", "latest"),
    ("ghcr.io/home-assistant/home-assistant:2026.11.1", "2026.11.1"),
    ("registry.lan:5000/app", "latest"),
    ("registry.lan:5000/app:1.2", "1.2"),
    ("app@sha256:abcd", None),
    ("app:1.2@sha256:abcd", "1.2"),
    ("sha256:0123abcd", None),
    ("", None),
])
def test_image_tags(reference: str, tag: str | None) -> None:
    assert image_tag(reference) == tag


def test_the_oci_version_label_wins_over_the_tag() -> None:
    assert image_version("app:latest", {"org.opencontainers.image.version": "3.1"}) == "3.1"
    assert image_version("app:2", {}) == "2"
    assert image_version(None) is None


def test_engine_times_to_the_second_and_zero_is_never() -> None:
    assert parse_engine_time("2026-11-29T19:27:20.55933629Z") == datetime(
        2026, 11, 29, 19, 27, 20, tzinfo=UTC)
    assert parse_engine_time("2026-11-29T20:27:20.5+01:00") == datetime(
        2026, 11, 29, 19, 27, 20, tzinfo=UTC)
    assert parse_engine_time("0001-01-01T00:00:00Z") is None
    assert parse_engine_time(None) is None


def inspected(name: str, status: str = "running", exit_code: int = 0, *,
              labels: dict[str, str] | None = None, started: str = "2026-11-29T10:00:00Z",
              finished: str = "0001-01-01T00:00:00Z", health: str | None = None,
              container_id: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"Status": status, "ExitCode": exit_code, "StartedAt": started,
                             "FinishedAt": finished}
    if health:
        state["Health"] = {"Status": health}
    return {"Id": container_id or name * 4, "Name": f"/{name}", "Created": "2026-11-29T09:00:00Z",
            "RestartCount": 2, "State": state,
            "Config": {"Image": "nextcloud:29", "Labels": labels or {}}}


def test_a_container_record_has_every_field() -> None:
    claim = container_record(inspected("cloud", labels={
        "com.docker.compose.service": "nextcloud", "com.docker.compose.project": "cloud"}))
    assert claim is not None
    assert claim.service == "nextcloud"
    assert claim.record == {
        "status": "ok", "image": "nextcloud:29", "version": "29", "restarts": 2, "exit_code": 0,
        "health": "none", "container_id": "cloudcloudcloudcloud", "container_name": "cloud",
        "since": datetime(2026, 11, 29, 10, 0, tzinfo=UTC), "compose_project": "cloud"}


def test_since_is_when_the_container_entered_its_state() -> None:
    exited = container_record(inspected("job", "exited", finished="2026-11-29T11:00:00Z"))
    created = container_record(inspected("new", "created", started="0001-01-01T00:00:00Z"))
    assert exited is not None and created is not None
    assert exited.record["since"] == datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
    assert created.record["since"] == datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def web(number: int, status: str = "running", exit_code: int = 0, **kwargs: Any
        ) -> dict[str, Any]:
    return inspected(f"app_web_{number}", status, exit_code, container_id=f"{number}" * 12,
                     labels={"com.docker.compose.service": "web"}, **kwargs)


def test_replicas_all_ok_are_one_ok_service() -> None:
    records, warnings = service_records([web(1), web(2), web(3)])
    assert warnings == []
    assert list(records) == ["web"]
    assert records["web"]["status"] == "ok"
    assert records["web"]["replicas"] == 3


def test_replicas_partly_down_are_a_degraded_service_shown_by_the_failing_one() -> None:
    records, _ = service_records([web(1), web(2, "exited", 1)])
    assert records["web"]["status"] == "degraded"
    assert records["web"]["container_id"] == "2" * 12
    assert records["web"]["exit_code"] == 1


def test_replicas_all_down_show_the_worst() -> None:
    records, _ = service_records([web(1, "exited", 0), web(2, "running", health="unhealthy"),
                                  web(3, "exited", 0)])
    assert records["web"]["status"] == "degraded"
    records, _ = service_records([web(1, "exited", 0), web(2, "exited", 2)])
    assert records["web"]["status"] == "failed"


def test_the_record_does_not_depend_on_listing_order() -> None:
    containers = [web(1, started="2026-11-29T10:00:00Z"), web(2, started="2026-11-29T11:00:00Z")]
    assert service_records(containers) == service_records(containers[::-1])
    assert service_records(containers)[0]["web"]["container_id"] == "2" * 12  # the newest


def test_a_container_without_a_valid_name_is_a_warning_not_a_record() -> None:
    records, warnings = service_records([inspected("x" * 70)])
    assert records == {}
    assert warnings == [(f"container {'x' * 70} ({'x' * 12}) has no valid service name; "
                         "give it a 'homelab.service' label")]
