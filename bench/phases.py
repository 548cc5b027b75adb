"""Where one command's time goes: runs `supervisor ARGS...` in this process with a timer around
each phase of a run (the digest check, the checkpoint, each loader, the evaluation, the
transitions) and prints the totals, in milliseconds, to stderr.

    python bench/phases.py run LAB --once --quiet --now 2026-11-26T10:00:30Z \\
        --events STATE/events.log --checkpoint STATE/checkpoint.json

Phases nest (the loaders run inside the evaluation); `main` is the whole command after its
imports. Use the installed package (`pip install '.[bench]'`), with bytecode compiled.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

STARTED = time.perf_counter()
import supervisor.cli

# (module, attribute path, label): wrapped where they are looked up, at call time.
# Methods before their classes: a class is wrapped by a function.
PHASES = [
    ("supervisor.manifest", "Check.save", "digest check: save"),
    ("supervisor.manifest", "Check", "digest check"),
    ("supervisor.transitions", "Kept.load", "checkpoint: load"),
    ("supervisor.memo", "evaluate", "evaluation, with loading"),
    ("supervisor.inputs", "load", "loading"),
    ("supervisor.inputs", "load_part", "loading part"),
    ("supervisor.inventory", "inventory_part", "loading part: inventory"),
    ("supervisor.world", "load_world_part", "loading part: world"),
    ("supervisor.incremental", "Incremental.touched", "loading part: which nodes"),
    ("supervisor.memo", "recall", "remembered evaluation: read"),
    ("supervisor.memo", "remember", "remembered evaluation: kept"),
    ("supervisor.inventory", "load_inventory", "loading: inventory"),
    ("supervisor.world", "load_world", "loading: world"),
    ("supervisor.rules", "load_rules", "loading: rules"),
    ("supervisor.merge", "State.__init__", "loading: merged state"),
    ("supervisor.engine", "evaluate", "evaluation: full"),
    ("supervisor.incremental", "Incremental.resume", "evaluation: taken up"),
    ("supervisor.transitions", "transitions", "transitions"),
    ("supervisor.transitions", "_commit", "log and checkpoint: write"),
]
TOTALS: dict[str, float] = {}


def timed(function: Callable[..., Any], label: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            TOTALS[label] = TOTALS.get(label, 0.0) + time.perf_counter() - started

    return wrapper


def main() -> None:
    imports = time.perf_counter() - STARTED
    for module_name, attribute, label in PHASES:
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, name):
            setattr(owner, name, timed(getattr(owner, name), label))
    sys.argv = ["supervisor", *sys.argv[1:]]
    started = time.perf_counter()
    with contextlib.suppress(SystemExit):
        supervisor.cli.main()
    TOTALS["main"] = time.perf_counter() - started
    sys.stderr.write(f"{'imports':28} {imports * 1000:7.0f} ms\n")
    for label, seconds in TOTALS.items():
        sys.stderr.write(f"{label:28} {seconds * 1000:7.0f} ms\n")


if __name__ == "__main__":
    main()
