"""The parse floor: only read and parse every input file of a lab, as fast as PyYAML and json allow.

    python bench/floor.py LAB_DIR

This is the physical floor for `supervisor eval LAB_DIR`: no validation, no evaluation. It uses
PyYAML's C loader with the garbage collector paused, and json.loads on bytes.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

import yaml


def parse_everything(lab: Path) -> int:
    """Reads and parses every inventory and world file; returns how many there were."""
    count = 0
    loader = yaml.CSafeLoader
    gc.disable()
    try:
        for node in sorted((lab / "hosts").iterdir()):
            with open(node / "services.yaml", "rb") as handle:
                yaml.load(handle.read(), Loader=loader)
            count += 1
        world = lab / "world"
        if world.is_file():
            with open(world, "rb") as handle:
                json.loads(handle.read())
            return count + 1
        for directory, subdirectories, names in os.walk(world):
            subdirectories.sort()
            for name in sorted(names):
                with open(os.path.join(directory, name), "rb") as handle:
                    json.loads(handle.read())
                count += 1
    finally:
        gc.enable()
    return count


def main() -> None:
    lab = Path(sys.argv[1])
    started = time.perf_counter()
    count = parse_everything(lab)
    print(f"{count} files parsed in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
