"""The tight floor: read every input file of a lab with os.read, parse JSON with json.loads and
YAML with PyYAML's C composer only (no construction), and nothing else.

    python bench/tight_floor.py LAB_DIR

Tighter than floor.py (which constructs YAML values with the C loader): this is what no reader
of these files can beat without skipping files. `eval` with a warm cache may skip them.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path

import yaml


def read(path: str) -> bytes:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        return os.read(descriptor, os.fstat(descriptor).st_size + 1)
    finally:
        os.close(descriptor)


def parse_everything(lab: Path) -> int:
    count = 0
    gc.disable()
    try:
        for node in sorted(os.listdir(lab / "hosts")):
            yaml.compose(read(str(lab / "hosts" / node / "services.yaml")), Loader=yaml.CSafeLoader)
            count += 1
        for directory, subdirectories, names in os.walk(lab / "world"):
            subdirectories.sort()
            for name in sorted(names):
                json.loads(read(os.path.join(directory, name)))
                count += 1
    finally:
        gc.enable()
    return count


def main() -> None:
    started = time.perf_counter()
    count = parse_everything(Path(sys.argv[1]))
    print(f"{count} files read and parsed in {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()
