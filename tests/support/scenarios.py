"""Scenario directories written by tests, the repository's fixtures, and evaluating them in
process: shared by the test modules (import from here, never from `conftest`)."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
OBSERVED_AT = "2026-11-26T10:00:00Z"

ScenarioFactory = Callable[..., Path]


def write_scenario(
    root: Path,
    hosts: dict[str, str],
    *,
    nodes: dict[str, Any] | None = None,
    services: dict[str, Any] | None = None,
    deployments: list[dict[str, Any]] | None = None,
    incidents: list[dict[str, Any]] | None = None,
    observed_at: str = OBSERVED_AT,
) -> Path:
    """A scenario directory: `hosts` maps node name to services.yaml text; the world is given
    as records. Nodes default to online and seen a minute ago."""
    for node, text in hosts.items():
        (root / "hosts" / node).mkdir(parents=True, exist_ok=True)
        (root / "hosts" / node / "services.yaml").write_text(text)
    world = root / "world"
    world.mkdir(parents=True, exist_ok=True)
    (world / "world.json").write_text(json.dumps(
        {"observed_at": observed_at, "observer": {"name": "test", "version": "1"}}))
    if nodes is None:
        nodes = {name: {"status": "online", "last_seen": "2026-11-26T09:59:00Z"} for name in hosts}
    for name, record in nodes.items():
        (world / "nodes").mkdir(exist_ok=True)
        (world / "nodes" / f"{name}.json").write_text(json.dumps(record))
    for service_id, record in (services or {}).items():
        node, name = service_id.split("/")
        (world / "services" / node).mkdir(parents=True, exist_ok=True)
        (world / "services" / node / f"{name}.json").write_text(json.dumps(record))
    for kind, records in (("deployments", deployments), ("incidents", incidents)):
        for record in records or []:
            (world / kind).mkdir(exist_ok=True)
            (world / kind / f"{record['id']}.json").write_text(json.dumps(record))
    return root


def ok(since: str = "2026-11-26T09:30:00Z") -> dict[str, Any]:
    return {"status": "ok", "since": since, "version": "1.0"}


def evaluate_dir(
    directory: Path, *, now: str | None = None, rules: tuple[Path, ...] = (),
    default_rules: bool = True, max_age: float | None = None, world: Path | None = None,
) -> Any:
    """The in-process equivalent of `supervisor eval DIR`."""
    from supervisor.engine import evaluate
    from supervisor.inputs import Inputs, load

    loaded = load(Inputs(
        inventory=directory / "hosts", world=world or directory / "world", rules=rules,
        default_rules=default_rules, now=now, max_age=max_age,
    ))
    return evaluate(loaded.state, loaded.rules)


def keys(evaluation: Any) -> set[tuple[str, str, str, str, str]]:
    return {
        (r.subject.kind, r.subject.id, r.condition, r.event, r.action)
        for r in evaluation.recommendations
    }
