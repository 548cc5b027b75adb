"""What `load_world_part` costs against `load_world`: both warm, after a walk, with the
collector paused, as `run --once` loads the world. Prints medians in milliseconds, and where
the part's time goes.

    python bench/world_part.py LAB [--nodes 3] [--repeat 7]

LAB is a generated lab (bench/generate.py); use a copy: the first round rewrites one record of
the first node asked for, as an observer would, and the cache is filled for it (in
$SUPERVISOR_CACHE_DIR, if set).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from supervisor import cache
from supervisor.inputs import Inputs
from supervisor.manifest import Check, reading
from supervisor.world import load_world, load_world_part

NOW = "2026-11-26T10:00:30Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", type=Path)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    world = options.lab / "world"
    inputs = Inputs(inventory=options.lab / "hosts", world=world, now=NOW)
    nodes = sorted(os.listdir(world / "services"))[:options.nodes]

    def walked(load: Callable[[], Any]) -> tuple[float, Any]:
        check = Check(inputs)
        check.save()
        # As `run` loads (manifest.Fresh): the collector paused, or it walks every object
        # made so far again and again while the cache's records are built.
        gc.disable()
        try:
            with reading(check.for_loaders()):
                started = time.perf_counter()
                found = load()
                return time.perf_counter() - started, found
        finally:
            gc.enable()

    whole = lambda: load_world(world)
    part = lambda: load_world_part(world, nodes)
    walked(whole)  # the cache filled
    # One record changed, as an observer rewrites it; both loads find it.
    record = min((world / "services" / nodes[0]).glob("*.json"))
    data = json.loads(record.read_text())
    data["status"] = "failed" if data.get("status") != "failed" else "ok"
    temporary = record.with_name(f".{record.name}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, record)
    changed, found = walked(part)
    assert found is not None, "no part: see load_world_part"
    time.sleep(cache.RACY_NS / 1e9 + 0.1)  # past the window in which a stamp vouches nothing
    walked(whole)

    # Where the part's time goes: the cache's shards.
    shards: dict[str, list[float]] = {}
    real_read = cache.read

    def timed_read(path: Path | None, expected: str) -> Any:
        started = time.perf_counter()
        try:
            return real_read(path, expected)
        finally:
            if path is not None and path.name.startswith("world-"):
                shards.setdefault(path.name, []).append(time.perf_counter() - started)

    parts, wholes = [], []
    for _ in range(options.repeat):
        wholes.append(walked(whole)[0])
        cache.read = timed_read  # type: ignore[assignment]
        parts.append(walked(part)[0])
        cache.read = real_read
    size = {path.name: path.stat().st_size for path in Path(
        str(cache.directory())).glob("world-*.json")}
    print(f"services per part: {len(found.services)} of {len(nodes)} nodes")
    print(f"load_world           median {statistics.median(wholes) * 1000:7.1f} ms")
    print(f"load_world_part      median {statistics.median(parts) * 1000:7.1f} ms "
          f"({statistics.median(parts) / statistics.median(wholes):.2f}x)")
    print(f"  one record changed        {changed * 1000:7.1f} ms (first part after it)")
    for name, seconds in sorted(shards.items(), key=lambda pair: -statistics.median(pair[1])):
        print(f"  shard {name[:8]} read     {statistics.median(seconds) * 1000:7.1f} ms "
              f"({size.get(name, 0) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
