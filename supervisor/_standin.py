"""TEMPORARY stand-ins for the partial loaders (full load, restricted)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from supervisor.errors import SupervisorError
from supervisor.model import Inventory, World


def inventory_part(root: Path, nodes: Iterable[str]) -> Inventory | None:
    from supervisor.inventory import load_inventory

    try:
        whole = load_inventory(root)
    except SupervisorError:
        return None
    wanted = set(nodes)
    inventory = Inventory()
    inventory.nodes = {name: node for name, node in whole.nodes.items() if name in wanted}
    inventory.services = {key: service for key, service in whole.services.items()
                          if service.node in wanted}
    return inventory


def load_world_part(root: Path, nodes: Iterable[str]) -> World | None:
    from supervisor.world import load_world

    try:
        whole = load_world(root)
    except SupervisorError:
        return None
    wanted = set(nodes)
    return whole._replace(services={key: record for key, record in whole.services.items()
                                    if key.split("/", 1)[0] in wanted})
