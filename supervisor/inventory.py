"""The desired state: `hosts/<node>/services.yaml`, validated and cross-checked."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from supervisor import cache, schemas
from supervisor.errors import InputError, Problem, raise_if
from supervisor.limits import VARIABLES, current, too_many
from supervisor.loader import SYMLINK_REFUSED, YamlDocument, load_yaml
from supervisor.manifest import walked
from supervisor.model import NAME, Inventory, Node, Service
from supervisor.parsed import MISSING, Parsed

SERVICES_FILE = "services.yaml"
# The cache's shards, by node: a run that needs a few nodes reads a few (`inventory_part`), and
# one after a file changed writes one.
SHARDS = 64


def load_inventory(root: Path) -> Inventory:
    """Reads every node directory under `root`; raises `InputError` listing every problem."""
    if not root.exists():
        raise InputError([Problem(str(root), message="inventory directory does not exist")])
    if not root.is_dir():
        raise InputError([Problem(str(root), message="inventory must be a directory of nodes")])
    problems: list[Problem] = []
    documents: dict[str, YamlDocument] = {}
    values: dict[str, dict[str, Any]] = {}
    cached = Parsed("inventory", str(root), SHARDS)
    try:
        entries = sorted(root.iterdir())
    except OSError as error:
        raise InputError([Problem(str(root), message=f"cannot be listed: {error.strerror}")]
                         ) from None
    limits = current()
    if len(entries) > limits.nodes:
        raise too_many(str(root), "nodes", len(entries), limits.nodes, VARIABLES["nodes"])
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            # A link could point anywhere, and what it points to would be read and quoted.
            problems.append(Problem(str(entry), message=SYMLINK_REFUSED))
            continue
        if not entry.is_dir():
            continue
        display = str(entry / SERVICES_FILE)
        if not NAME.fullmatch(entry.name):
            problems.append(Problem(str(entry), message=f"node name {entry.name!r} is not valid "
                                    "(lowercase letters, digits, '_', '.', '-'; at most 63)"))
            continue
        value = cached.get(display)
        if value is MISSING:
            try:
                document = load_yaml(entry / SERVICES_FILE, display, follow=False)
            except InputError as error:
                problems.extend(error.problems)
                continue
            if not isinstance(document.value, dict):
                problems.append(document.problem((), "must be a mapping with a 'services' key"))
                continue
            found = schemas.check("inventory", document.value, document)
            if found:
                problems.extend(found)
                continue
            documents[entry.name] = document
            # Kept as the documents rules see: the cache spares a warm run building them.
            value = _declared(entry.name, document.value)
            cached.put(display, value)
        values[entry.name] = value
    if not values and not problems:
        problems.append(Problem(str(root), message=f"holds no nodes (expected <node>/{SERVICES_FILE})"))
    if problems:
        cached.save()
        raise_if(problems)

    inventory = _assemble(values)
    if len(inventory.services) > limits.services:
        cached.save()
        raise too_many(str(root), "services", len(inventory.services), limits.services,
                       VARIABLES["services"])

    def document_of(node: str) -> YamlDocument:
        # A cached file is read again only to say where a problem is.
        if node not in documents:
            documents[node] = load_yaml(root / node / SERVICES_FILE,
                                        str(root / node / SERVICES_FILE), follow=False)
        return documents[node]

    # The cross-file checks cost more than reading a warm cache: they are not run again on
    # the very files they passed on.
    if not cached.passed_before("dependencies"):
        problems.extend(_check_dependencies(inventory, document_of))
    if not problems:
        cached.passed("dependencies")
    cached.save()
    raise_if(problems)
    return inventory


def inventory_part(root: Path, nodes: Iterable[str]) -> Inventory | None:
    """The inventory of `nodes` alone, as `load_inventory` gives it (nodes in name order, each
    one's services in file order), from the cache only: the shards of those nodes are read, and
    no file of the inventory. For a run that walked its inputs (`manifest.walked`); a node of
    which the walk saw no directory is left out.

    None where the cache cannot vouch for it, and the caller loads the whole inventory (which
    reports what is wrong): no walk, the cache off, a node's file not kept under the stamp the
    walk saw (a whole load keeps no file it refuses), or a node's entry a link or not listed.
    Nothing is checked (neither the schema nor the dependencies) and nothing written: the
    caller asks only about inputs that are, by their digest, exactly those a whole load
    checked."""
    reading = walked()
    if reading is None or reading.listing is None or cache.directory() is None:
        return None
    base = str(root)
    top = reading.listed(base)
    if top is None or top.names == [""]:  # not walked, or walked as a file
        return None
    kept = Parsed("inventory", base, SHARDS)
    values: dict[str, dict[str, Any]] = {}
    for node in sorted(set(nodes)):
        if not node or node.startswith(".") or "/" in node:
            continue  # no node's name: a whole load passes over hidden entries
        folder = str(root / node)
        if reading.listed(folder) is None:
            if folder in reading.listing.unlisted or (
                    node in top.names and reading.seen(folder) is None):
                return None  # not listed, or a link (refused) or another odd file
            continue  # no such entry, or a plain file: no node
        path = str(root / node / SERVICES_FILE)
        stamp = reading.seen(path)
        value = kept.kept(path, stamp) if stamp is not None else MISSING
        if value is MISSING:
            return None
        values[node] = value
    try:
        return _assemble(values)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None  # a value edited in the cache past its checksum (see `inputs.load`)


def _declared(node_name: str, document: dict[str, Any]) -> dict[str, Any]:
    """What one node's file declares, as rules see it: the node's desired document and each
    service's, in the file's order (JSON, so that the cache can keep it)."""
    node_spec = document.get("node") or {}
    services = []
    for service_name, spec in (document.get("services") or {}).items():
        spec = spec or {}
        services.append([service_name, {
            "critical": spec.get("critical", False),
            "one_shot": spec.get("one_shot", False),
            "depends_on": [_qualify(node_name, ref) for ref in spec.get("depends_on", [])],
            "image": spec.get("image"),
            "version": spec.get("version"),
            "labels": spec.get("labels", {}),
            **{key: value for key, value in spec.items() if key.startswith("x-")},
        }])
    node_desired = {
        "critical": node_spec.get("critical", False),
        "labels": node_spec.get("labels", {}),
        **{key: value for key, value in node_spec.items() if key.startswith("x-")},
    }
    return {"node": node_desired, "services": services}


def _assemble(values: dict[str, dict[str, Any]]) -> Inventory:
    inventory = Inventory()
    services = inventory.services
    for node_name, declared in values.items():
        ids = []
        for service_name, desired in declared["services"]:
            service_id = f"{node_name}/{service_name}"
            services[service_id] = Service(
                id=service_id, node=node_name, name=service_name, critical=desired["critical"],
                depends_on=tuple(desired["depends_on"]), desired=desired,
            )
            ids.append(service_id)
        node_desired = declared["node"]
        inventory.nodes[node_name] = Node(
            name=node_name, critical=node_desired["critical"], desired=node_desired,
            services=tuple(ids),
        )
    return inventory


def _qualify(node: str, ref: str) -> str:
    return ref if "/" in ref else f"{node}/{ref}"


def _check_dependencies(inventory: Inventory, document_of: Callable[[str], YamlDocument]
                        ) -> list[Problem]:
    problems = []

    def where(service: Service, index: int | None = None) -> tuple[YamlDocument, tuple[str | int, ...]]:
        path: tuple[str | int, ...] = ("services", service.name, "depends_on")
        return document_of(service.node), path if index is None else (*path, index)

    for service in inventory.services.values():
        for index, dependency in enumerate(service.depends_on):
            if dependency == service.id:
                document, path = where(service, index)
                problems.append(document.problem(path, f"{service.id} depends on itself"))
            elif dependency not in inventory.services:
                document, path = where(service, index)
                problems.append(document.problem(
                    path, f"depends on {dependency}, which no node declares"))
    for cycle in _cycles(inventory):
        first = inventory.services[cycle[0]]
        document, path = where(first)
        problems.append(document.problem(path, "dependency cycle: " + " -> ".join(cycle)))
    return problems


def _cycles(inventory: Inventory) -> list[list[str]]:
    """Each dependency cycle once, starting from its smallest id (self-loops are reported apart)."""
    visiting, done = 1, 2
    state: dict[str, int] = {}
    cycles: list[list[str]] = []
    for start in sorted(inventory.services):
        if state.get(start):
            continue
        # Iterative depth-first search: a long dependency chain must not hit the recursion limit.
        stack: list[tuple[str, int]] = [(start, 0)]
        trail: list[str] = []
        state[start] = visiting
        trail.append(start)
        while stack:
            current, index = stack[-1]
            targets = [d for d in inventory.services[current].depends_on
                       if d in inventory.services and d != current]
            if index < len(targets):
                stack[-1] = (current, index + 1)
                target = targets[index]
                if state.get(target) == visiting:
                    loop = trail[trail.index(target):]
                    pivot = loop.index(min(loop))
                    loop = loop[pivot:] + loop[:pivot]
                    cycles.append([*loop, loop[0]])
                elif not state.get(target):
                    state[target] = visiting
                    trail.append(target)
                    stack.append((target, 0))
            else:
                state[current] = done
                trail.pop()
                stack.pop()
    return sorted(cycles)
