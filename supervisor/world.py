"""The actual state: the observer's world snapshot, as a directory or as one file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.clock import parse_time
from supervisor.errors import InputError, Problem, raise_if
from supervisor.inventory import NAME
from supervisor.loader import load_json, load_yaml
from supervisor.schemas import JsonSource


@dataclass(frozen=True)
class World:
    observed_at: datetime
    observer: dict[str, Any]
    nodes: dict[str, dict[str, Any]]
    services: dict[str, dict[str, Any]]  # keyed by <node>/<service>
    deployments: list[dict[str, Any]]  # oldest first
    incidents: list[dict[str, Any]]  # oldest first


def load_world(path: Path) -> World:
    if not path.exists():
        raise InputError([Problem(str(path), message="world snapshot does not exist")])
    document = _read_directory(path) if path.is_dir() else _read_file(path)
    return _assemble(document)


def _read_file(path: Path) -> dict[str, Any]:
    display = str(path)
    source: schemas.Source
    if path.suffix in (".yaml", ".yml"):
        yaml_document = load_yaml(path, display)
        document, source = yaml_document.value, yaml_document
    else:
        document, source = load_json(path, display), JsonSource(display)
    if not isinstance(document, dict):
        raise InputError([Problem(display, message="must be a mapping with 'observed_at'")])
    raise_if(schemas.check("world", document, source))
    return document


def _read_directory(root: Path) -> dict[str, Any]:
    problems: list[Problem] = []

    def record(file: Path, definition: str) -> Any:
        display = str(file)
        try:
            value = load_json(file, display)
        except InputError as error:
            problems.extend(error.problems)
            return None
        if not isinstance(value, dict):
            problems.append(Problem(display, message="must be a JSON object"))
            return None
        found = schemas.check("world", value, JsonSource(display), definition)
        problems.extend(found)
        return None if found else value

    def named(file: Path, what: str) -> str | None:
        if NAME.fullmatch(file.stem if file.is_file() else file.name):
            return file.stem if file.is_file() else file.name
        problems.append(Problem(str(file), message=f"is not a valid {what} name"))
        return None

    document: dict[str, Any] = {"nodes": {}, "services": {}, "deployments": [], "incidents": []}
    meta = record(root / "world.json", "world")
    if meta is not None:
        document.update(meta)
    for file in _json_files(root / "nodes"):
        name = named(file, "node")
        if name is not None and (value := record(file, "node")) is not None:
            document["nodes"][name] = value
    services_root = root / "services"
    if services_root.is_dir():
        for node_dir in sorted(services_root.iterdir()):
            if node_dir.name.startswith(".") or not node_dir.is_dir():
                continue
            node = named(node_dir, "node")
            for file in _json_files(node_dir):
                name = named(file, "service")
                if node and name and (value := record(file, "service")) is not None:
                    document["services"][f"{node}/{name}"] = value
    for kind, definition in (("deployments", "deployment"), ("incidents", "incident")):
        for file in _json_files(root / kind):
            if (value := record(file, definition)) is not None:
                document[kind].append(value)
    raise_if(problems)
    return document


def _json_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    # Hidden files are the observer's temporaries; other suffixes are not records.
    return sorted(
        entry for entry in directory.iterdir()
        if entry.suffix == ".json" and not entry.name.startswith(".")
    )


def _assemble(document: dict[str, Any]) -> World:
    def when(record: dict[str, Any], key: str) -> tuple[datetime, str]:
        return parse_time(record[key]), str(record.get("id", ""))

    return World(
        observed_at=parse_time(document["observed_at"]),
        observer=document.get("observer") or {},
        nodes=dict(sorted(document.get("nodes", {}).items())),
        services=dict(sorted(document.get("services", {}).items())),
        deployments=sorted(document.get("deployments", []), key=lambda d: when(d, "started_at")),
        incidents=sorted(document.get("incidents", []), key=lambda i: when(i, "opened_at")),
    )
