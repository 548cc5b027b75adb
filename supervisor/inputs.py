"""Gathering one evaluation's inputs: inventory, world and rules, with every problem at once.

`Inputs` is all that `run` needs when its inputs are unchanged: the readers and the engine
are imported when something is loaded, not with this module.
"""

from __future__ import annotations

import gc
import math
import os
from collections.abc import Container
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor import cache
from supervisor.errors import InputError, Problem, SupervisorError
from supervisor.resources import data_dir

if TYPE_CHECKING:
    from supervisor.engine import Evaluation
    from supervisor.merge import State
    from supervisor.model import Inventory, RuleSet, Subject, World
    from supervisor.world import Progress


class Inputs(NamedTuple):
    inventory: Path
    world: Path
    rules: tuple[Path, ...] = ()
    default_rules: bool = True
    now: str | None = None  # RFC 3339; None means the world's observed_at
    max_age: float | None = None  # seconds; None means the rules' max_world_age_seconds
    remediations: Path | None = None  # the remediation history; None means none
    max_skew: float | None = None  # seconds; None means the rules' max_clock_skew_seconds

    def rule_sources(self) -> list[Path]:
        return ([data_dir("rules")] if self.default_rules else []) + list(self.rules)

    def params(self) -> dict[str, Any]:
        """Params from the command line, which win over every rule set's."""
        given = {"max_world_age_seconds": self.max_age, "max_clock_skew_seconds": self.max_skew}
        return {name: value for name, value in given.items() if value is not None}


class Loaded(NamedTuple):
    state: State
    rules: RuleSet


def load(inputs: Inputs, *, clock: datetime | None = None,
         progress: Progress | None = None) -> Loaded:
    """Reads and checks everything; raises one `SupervisorError` listing every problem.

    The evaluation time is `inputs.now`, else `clock` (the wall clock, for `run`), else the
    world's `observed_at`, so that a fixture always gives the same answer.
    """
    try:
        loaded = _load(inputs, clock, progress)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        # Values from the cache are taken in the shape their reader wrote them, checksummed.
        # One edited past that (its checksum made to match) ends here: everything is read
        # again without the cache, which gives the inputs' own answer (or shows a real bug).
        if cache.directory() is None:
            raise
        with cache.bypassed():
            loaded = _load(inputs, clock, progress)
    assert loaded is not None, "everything loaded, or the problems raised"
    return loaded


def load_part(inputs: Inputs, nodes: set[str], *, clock: datetime | None = None
              ) -> Loaded | None:
    """The inputs with only `nodes`' declarations and services' records (the world's other
    records, and the rules, whole), for a run that takes up an evaluation of these very
    inputs as they were (memo.py). Taken only from the caches of this run's walk: None where
    they cannot vouch for a node, or on any problem (then everything is loaded, and the
    problems reported)."""
    try:
        return _load(inputs, clock, None, frozenset(nodes))
    except (SupervisorError, AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None  # see `load`


def _load(inputs: Inputs, clock: datetime | None, progress: Progress | None,
          part: frozenset[str] | None = None) -> Loaded | None:
    from supervisor.inventory import inventory_part, load_inventory
    from supervisor.merge import State
    from supervisor.rules import load_rules
    from supervisor.timestamps import parse_time
    from supervisor.world import load_world, load_world_part

    problems: list[Problem] = []
    now = None
    if inputs.now is not None:
        try:
            now = parse_time(inputs.now)
        except ValueError as error:
            problems.append(Problem("--now", message=str(error)))
    if inputs.max_age is not None and not 0 <= inputs.max_age < math.inf:
        problems.append(Problem("--max-age", message="must be a number of seconds, 0 or more"))
    if inputs.max_skew is not None and not 0 <= inputs.max_skew < math.inf:
        problems.append(Problem("--max-skew", message="must be a number of seconds, 0 or more"))

    inventory: Inventory | None = None
    world: World | None = None
    rules: RuleSet | None = None
    if part is not None:
        inventory = inventory_part(inputs.inventory, part)
        world = load_world_part(inputs.world, part) if inventory is not None else None
        if inventory is None or world is None:
            return None
    else:
        try:
            inventory = load_inventory(inputs.inventory)
        except SupervisorError as error:
            problems.extend(error.problems)
        try:
            world = load_world(inputs.world, progress)
        except SupervisorError as error:
            problems.extend(error.problems)
    try:
        rules = load_rules(inputs.rule_sources(), params=inputs.params())
    except SupervisorError as error:
        problems.extend(error.problems)
    remediations: dict[str, list[dict[str, Any]]] = {}
    maintenance: dict[str, dict[str, str]] = {}
    # A missing history is an empty one: its reader (and the event log it imports) is imported
    # only when there is a file to read, which keeps a plain `eval` quick to start.
    if inputs.remediations is not None and os.path.lexists(inputs.remediations):
        from supervisor.remediation.history import read_document

        try:
            remediations, maintenance = read_document(inputs.remediations)
        except SupervisorError as error:
            problems.extend(error.problems)
    if problems or inventory is None or world is None or rules is None:
        raise InputError(problems)
    now = now or clock or world.observed_at
    return Loaded(State(inventory, world, now, remediations, maintenance, part), rules)


def evaluate_inputs(inputs: Inputs, *, clock: datetime | None = None,
                    trace: Container[Subject] = (), progress: Progress | None = None
                    ) -> tuple[Loaded, Evaluation]:
    """Loads and evaluates, with the garbage collector paused: both allocate many objects and
    free few, and a collection pass over a hundred thousand services costs seconds."""
    from supervisor.engine import evaluate
    from supervisor.limits import current

    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = load(inputs, clock=clock, progress=progress)
        return loaded, evaluate(loaded.state, loaded.rules, trace=trace, limits=current())
    finally:
        if enabled:
            gc.enable()
