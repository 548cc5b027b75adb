"""The `supervisor` program (its console script) and `python -m supervisor`.

Apart from the CLI so that the garbage collector can be paused before typer is imported: start-up
makes tens of thousands of objects that live as long as the process, and collecting while they
are made only walks them again and again. `cli.main` freezes them and resumes collecting.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    gc.disable()
    from supervisor.cli import main as run

    sys.exit(run())


if __name__ == "__main__":
    main()
