"""The floor of an unchanged `run`: list and stat every input file of a lab, read nothing.

    python bench/stat_walk.py LAB_DIR
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def walk(root: Path) -> int:
    count = 0
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        for name in sorted(names):
            os.stat(os.path.join(directory, name), follow_symlinks=False)
            count += 1
    return count


if __name__ == "__main__":
    lab = Path(sys.argv[1])
    print(walk(lab / "hosts") + walk(lab / "world"), "files")
