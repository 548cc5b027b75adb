"""`import compose`: the inventory from a homelab's per-host Compose folders,
`DIR/<node>/<stack>/compose.yaml`, one `hosts/<node>/services.yaml` per node.

A service is named as `observe docker` will name its container (its `homelab.service` label,
else its Compose service name, lowercased), so that what is imported and what is observed meet.
What Compose cannot say (critical, one-shot, a dependency on another node) comes from an
`x-homelab` mapping on the service. Output is deterministic: services sorted by name, keys in a
fixed order, and nothing in it that depends on where or when the import ran.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from supervisor.containers import SERVICE_LABEL, image_version
from supervisor.errors import InputError, Problem, raise_if
from supervisor.interpolate import InterpolationError, interpolate, parse_dotenv
from supervisor.loader import YamlDocument, load_yaml, read_text
from supervisor.model import NAME

# In the order Compose itself looks for them.
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
EXTENSION = "x-homelab"
EXTENSION_KEYS = {"critical": bool, "one_shot": bool, "depends_on": list, "skip": bool}
WAY_OUT = (f"give one of them a '{SERVICE_LABEL}' label naming it apart (labels: "
           f"{{{SERVICE_LABEL}: <stack>-<service>}}), which observe docker uses too; see "
           "docs/observe.md")


class Stack(NamedTuple):
    node: str
    name: str
    file: Path
    display: str  # as errors show it: relative to the current directory when under it


class Imported(NamedTuple):
    """One service as the inventory will declare it, and where it came from."""

    name: str
    spec: dict[str, Any]
    stack: Stack
    line: int | None
    column: int | None


def discover(root: Path) -> list[Stack]:
    """Every stack under `root`, sorted by node then stack. A folder without a Compose file
    is not a stack (homelab repositories keep config folders beside them)."""
    if not root.is_dir():
        raise InputError([Problem(str(root), message="is not a directory of per-node Compose "
                                  "folders (DIR/<node>/<stack>/compose.yaml)")])
    problems: list[Problem] = []
    stacks: list[Stack] = []
    for node_dir in _folders(root):
        for stack_dir in _folders(node_dir):
            found = next((stack_dir / n for n in COMPOSE_FILES if (stack_dir / n).is_file()),
                         None)
            if found is None:
                continue
            if not NAME.fullmatch(node_dir.name):
                problems.append(Problem(str(node_dir), message=f"node name {node_dir.name!r} is "
                                        "not valid (lowercase letters, digits, '_', '.', '-'; "
                                        "at most 63)"))
                break
            stacks.append(Stack(node_dir.name, stack_dir.name, found, _display(found)))
    raise_if(problems)
    if not stacks:
        raise InputError([Problem(str(root), message="holds no Compose files (expected "
                                  "<node>/<stack>/compose.yaml)")])
    return stacks


def _folders(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as error:
        raise InputError([Problem(str(directory), message=f"cannot be listed: {error.strerror}")]
                         ) from None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def variables_for(stack: Stack, environment: Mapping[str, str]) -> dict[str, str]:
    """The `.env` beside the Compose file, overridden by the environment (as in Compose)."""
    dotenv = stack.file.parent / ".env"
    if not dotenv.is_file():
        return dict(environment)
    shown = _display(dotenv)
    defined, problems = parse_dotenv(read_text(dotenv, shown), environment)
    raise_if([Problem(shown, line, None, "", message) for line, message in problems])
    return {**defined, **environment}


def read_stack(stack: Stack, environment: Mapping[str, str]) -> tuple[list[Imported],
                                                                      list[Problem]]:
    problems: list[Problem] = []
    try:
        document = load_yaml(stack.file, stack.display)
        variables = variables_for(stack, environment)
    except InputError as error:
        return [], error.problems
    top = document.value
    if not isinstance(top, dict) or not isinstance(top.get("services", {}), dict):
        return [], [document.problem((), "must be a mapping with a 'services' mapping")]
    services: dict[str, Any] = top.get("services") or {}

    def text(path: tuple[str | int, ...], value: Any) -> str | None:
        if value is None or isinstance(value, dict | list):
            problems.append(document.problem(path, "must be a string"))
            return None
        try:
            return interpolate(str(value) if not isinstance(value, bool) else
                               str(value).lower(), variables)
        except InterpolationError as error:
            problems.append(document.problem(path, str(error)))
            return None

    names: dict[str, str] = {}
    labels_of: dict[str, dict[str, str]] = {}
    for compose_name, spec in services.items():
        spec = spec if isinstance(spec, dict) else {}
        labels_of[compose_name] = _labels(spec.get("labels"), ("services", compose_name,
                                                                "labels"), document, text,
                                          problems)
        name = (labels_of[compose_name].get(SERVICE_LABEL) or str(compose_name)).lower()
        if not NAME.fullmatch(name):
            problems.append(document.problem(
                ("services", compose_name), f"service name {name!r} is not a valid inventory "
                "name (lowercase letters, digits, '_', '.', '-'; at most 63); name it with a "
                f"'{SERVICE_LABEL}' label", key=True))
        names[compose_name] = name
    imported: list[Imported] = []
    for compose_name, spec in services.items():
        where: tuple[str | int, ...] = ("services", compose_name)
        if spec is not None and not isinstance(spec, dict):
            problems.append(document.problem(where, "must be a mapping"))
            continue
        spec = spec or {}
        extension = _extension(spec.get(EXTENSION), (*where, EXTENSION), document, problems)
        if extension.get("skip"):
            continue
        entry: dict[str, Any] = {}
        if extension.get("critical"):
            entry["critical"] = True
        if extension.get("one_shot"):
            entry["one_shot"] = True
        depends = _depends_on(spec.get("depends_on"), (*where, "depends_on"), names, document,
                              problems)
        depends += [str(ref) for ref in extension.get("depends_on", [])]
        if depends:
            entry["depends_on"] = list(dict.fromkeys(depends))
        if "image" in spec:
            image = text((*where, "image"), spec["image"])
            if image:
                entry["image"] = image
                version = image_version(image)
                if version:
                    entry["version"] = version
        if labels_of[compose_name]:
            entry["labels"] = dict(sorted(labels_of[compose_name].items()))
        line, column = document.locate(where, key=True) or (None, None)
        imported.append(Imported(names[compose_name], entry, stack, line, column))
    return imported, problems


def _labels(value: Any, path: tuple[str | int, ...], document: YamlDocument,
            text: Any, problems: list[Problem]) -> dict[str, str]:
    """Labels in map form or list form (`KEY=VALUE`, or `KEY` for an empty value)."""
    labels: dict[str, str] = {}
    if value is None:
        return labels
    if isinstance(value, dict):
        for key, item in value.items():
            resolved = "" if item is None else text((*path, key), item)
            if resolved is not None:
                labels[str(key)] = resolved
    elif isinstance(value, list):
        for index, item in enumerate(value):
            resolved = text((*path, index), item)
            if resolved is not None:
                key, _, label_value = resolved.partition("=")
                labels[key] = label_value
    else:
        problems.append(document.problem(path, "must be a mapping or a list of KEY=VALUE"))
    return labels


def _depends_on(value: Any, path: tuple[str | int, ...], names: dict[str, str],
                document: YamlDocument, problems: list[Problem]) -> list[str]:
    """Short syntax (a list of names) or long syntax (a mapping of name to condition)."""
    if value is None:
        return []
    if isinstance(value, dict):
        listed = [(key, (*path, key)) for key in value]
    elif isinstance(value, list):
        listed = [(item, (*path, index)) for index, item in enumerate(value)]
    else:
        problems.append(document.problem(path, "must be a list of services or a mapping"))
        return []
    found = []
    for dependency, where in listed:
        if dependency not in names:
            problems.append(document.problem(where, f"depends on {dependency!r}, which this "
                                             "Compose file does not define", key=True))
            continue
        found.append(names[dependency])
    return found


def _extension(value: Any, path: tuple[str | int, ...], document: YamlDocument,
               problems: list[Problem]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(document.problem(path, f"must be a mapping with keys "
                                         f"{', '.join(EXTENSION_KEYS)}"))
        return {}
    good: dict[str, Any] = {}
    for key, item in value.items():
        expected = EXTENSION_KEYS.get(key)
        if expected is None:
            problems.append(document.problem((*path, key), f"unknown key {key!r} (known: "
                                             f"{', '.join(EXTENSION_KEYS)})", key=True))
        elif expected is bool and not isinstance(item, bool):
            problems.append(document.problem((*path, key), "must be true or false"))
        elif expected is list and not (isinstance(item, list)
                                       and all(isinstance(ref, str) for ref in item)):
            problems.append(document.problem((*path, key), "must be a list of service "
                                             "references (service, or node/service)"))
        elif expected is list and (bad := [r for r in item if not _is_reference(r)]):
            problems.append(document.problem((*path, key), f"{bad[0]!r} is not a service "
                                             "reference (service, or node/service)"))
        else:
            good[key] = item
    return good


def _is_reference(reference: str) -> bool:
    parts = reference.split("/")
    return len(parts) <= 2 and all(NAME.fullmatch(part) for part in parts)


def import_compose(root: Path, environment: Mapping[str, str] | None = None
                   ) -> dict[str, dict[str, Imported]]:
    """node → service name → what to declare; every problem raised at once."""
    environment = dict(os.environ) if environment is None else environment
    problems: list[Problem] = []
    nodes: dict[str, dict[str, Imported]] = {}
    for stack in discover(root):
        services, found = read_stack(stack, environment)
        problems.extend(found)
        declared = nodes.setdefault(stack.node, {})
        for service in services:
            earlier = declared.get(service.name)
            if earlier is not None:
                problems.append(Problem(
                    service.stack.display, service.line, service.column, f"services.{service.name}",
                    f"node {stack.node} already has a service {service.name!r}, from "
                    f"{_where(earlier)}; {WAY_OUT}"))
                continue
            declared[service.name] = service
    raise_if(problems)
    problems.extend(_unknown_dependencies(nodes))
    raise_if(problems)
    return nodes


def _where(service: Imported) -> str:
    return f"{service.stack.display}:{service.line}:{service.column}"


def _unknown_dependencies(nodes: dict[str, dict[str, Imported]]) -> list[Problem]:
    """A dependency on another node must name a service imported there. (A node not among
    the Compose folders is not checked here: `supervisor validate` checks the whole
    inventory.)"""
    problems = []
    for node, services in nodes.items():
        for service in services.values():
            for reference in service.spec.get("depends_on", []):
                target_node, _, target = reference.rpartition("/")
                target_node = target_node or node
                if target_node in nodes and target not in nodes[target_node]:
                    problems.append(Problem(
                        service.stack.display, service.line, service.column,
                        f"services.{service.name}.{EXTENSION}.depends_on",
                        f"depends on {target_node}/{target}, which no Compose file of node "
                        f"{target_node} defines"))
    return problems


HEADER = """\
# Written by `supervisor import compose` from:
{files}# Edit those (an x-homelab mapping on a service says what Compose cannot) and import
# again: changes made here are overwritten.
"""
_KEY_ORDER = ("critical", "one_shot", "depends_on", "image", "version", "labels")


def render_node(services: dict[str, Imported]) -> str:
    """One node's `services.yaml`: the same services always give the same bytes."""
    import yaml

    files = sorted({f"{s.stack.node}/{s.stack.name}/{s.stack.file.name}"
                    for s in services.values()})
    document = {"services": {name: {key: services[name].spec[key] for key in _KEY_ORDER
                                    if key in services[name].spec} or None
                             for name in sorted(services)}}
    body = yaml.safe_dump(document, sort_keys=False, default_flow_style=False,
                          allow_unicode=True, width=100)
    return HEADER.format(files="".join(f"#   {name}\n" for name in files)) + body
