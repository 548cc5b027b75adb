"""The inventory of a few nodes from a warm cache (`inventory_part`, for a run taking up the last
evaluation) against the whole inventory from it (`load_inventory`), both after the run's walk,
with the collector paused as a run has it. Prints the medians, in milliseconds.

    python bench/inventory_part.py LAB_DIR [--nodes 3] [--repeat 9]

Uses the cache directory the environment names (set `SUPERVISOR_CACHE_DIR` to keep the user's
out of it); the first load fills it, and files written within the last two seconds are not
taken from it (`cache.RACY_NS`).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from supervisor.inputs import Inputs
from supervisor.inventory import inventory_part, load_inventory
from supervisor.manifest import Check, reading


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lab", type=Path)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=9)
    options = parser.parse_args()
    root = options.lab / "hosts"
    inputs = Inputs(inventory=root, world=options.lab / "world")
    check = Check(inputs)
    check.save()
    gc.disable()
    with reading(check.for_loaders()):
        whole = load_inventory(root)  # fills the cache, if it was not
    names = list(whole.nodes)
    step = max(1, len(names) // options.nodes)
    nodes = names[::step][:options.nodes]

    def timed(load: Callable[[], object]) -> float:
        """One load after a walk of its own (its directory index is built by the first
        loader that asks, as in a run)."""
        walked = Check(inputs).for_loaders()
        with reading(walked):
            started = time.perf_counter()
            found = load()
            seconds = time.perf_counter() - started
        assert found is not None
        return seconds * 1000

    part, full = [], []
    for _ in range(options.repeat):
        part.append(timed(lambda: inventory_part(root, nodes)))
        full.append(timed(lambda: load_inventory(root)))
        gc.collect()
    print(f"inventory_part, {len(nodes)} nodes ({', '.join(nodes)}): "
          f"median {statistics.median(part):.1f} ms (min {min(part):.1f})")
    print(f"load_inventory, {len(names)} nodes, {len(whole.services)} services: "
          f"median {statistics.median(full):.1f} ms (min {min(full):.1f})")


if __name__ == "__main__":
    main()
