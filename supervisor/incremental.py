"""Incremental evaluation for `run --watch`: keep the inputs and the evaluation, redo only what
a change touches.

A watching process keeps the parsed inputs, the recommendations every subject fired (before
root causes overrule symptoms) and the digest's per-file hashes. When the watcher reports that
records of services or nodes the world already had were rewritten, only those files are read
again, the documents that show them are rebuilt, and only the subjects whose documents show
them are evaluated again: the service, its node, the services that depend on it (and, for a
node, every service on it and their dependants). Overruling, ordering and the summary are then
done again over everything fired, which is cheap. Anything else (a file added or removed, the
inventory, the rules, world.json, deployments, incidents, the remediation history, a clock past
the evaluation's `valid_until`, a maintenance window ending) is evaluated in full, as `run
--once` does. The result is the full evaluation's, byte for byte: tests/test_incremental.py.

A `run --once` takes up the evaluation the last run remembered (memo.py) the same way, having
loaded only the nodes the changed records touch (`touched`); where those do not hold every
document the subjects evaluated again show (`_covered`), everything is loaded instead.
"""

from __future__ import annotations

import copy
import gc
import os
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from supervisor.engine import Evaluation, Recommendation, _overrule, evaluate, summarize
from supervisor.errors import InputError, SupervisorError
from supervisor.expressions import nodes
from supervisor.limits import current
from supervisor.manifest import Check, reading
from supervisor.model import Subject
from supervisor.timestamps import format_time
from supervisor.world import read_record

if TYPE_CHECKING:
    from supervisor.inputs import Inputs, Loaded
    from supervisor.memo import Remembered
    from supervisor.merge import State
    from supervisor.model import Inventory, RuleSet


class Incremental:
    """One watching process's inputs and evaluation, kept between runs."""

    def __init__(self) -> None:
        self.changed: set[str] | None = None  # real paths since the last run; None: unknown
        self.full_runs = 0
        self.incremental_runs = 0
        self._check: Check | None = None
        self._loaded: Loaded | None = None
        self._evaluation: Evaluation | None = None
        self._fired: dict[Subject, list[Recommendation]] = {}
        self._depends_on: dict[str, list[str]] = {}
        self._timed: frozenset[str] = frozenset()
        self._clocked = False  # a matcher reads `now` itself: see `clocked`
        self._pending: set[str] | None = None  # changes not yet evaluated
        self._pinned: frozenset[Subject | None] = frozenset()  # see `Evaluation.pinned`
        self._spent: dict[str, int] = {}  # see `Evaluation.spent`

    def notice(self, changed: set[str] | None) -> None:
        """The watcher saw these paths change (None: something it cannot say)."""
        if changed is None or self.changed is None:
            self.changed = None
        else:
            self.changed |= changed

    def fingerprint(self, inputs: Inputs) -> str:
        """The digest of the inputs, walking them only when the changes are not known."""
        changed, self.changed = self.changed, set()
        if self._check is not None and changed is not None and (
                not changed or self._check.update(changed)):
            if self._pending is not None:
                self._pending |= changed
            return self._check.digest
        before = self._check.digest if self._check is not None else None
        self._check = Check(inputs, complete=True)
        self._check.save()
        if self._check.digest != before:
            self._pending = None  # what changed is not known: evaluate everything
        return self._check.digest

    def evaluate(self, inputs: Inputs, now: datetime) -> tuple[Loaded, Evaluation]:
        assert self._check is not None, "fingerprint first"
        loaded, evaluation = self._loaded, self._evaluation
        if (self._pending is not None and loaded is not None and evaluation is not None
                and self._apply(inputs, loaded, evaluation, self._pending, now)):
            self.incremental_runs += 1
        else:
            from supervisor.inputs import evaluate_inputs

            # The kept inputs are millions of objects that live until the next full evaluation:
            # frozen, the collector never walks them again (a walk costs a second at 100,000
            # services, and the process would spend it while idle). What they leave behind when
            # replaced goes back to the collector here.
            gc.unfreeze()
            self._loaded = self._evaluation = None
            with reading(self._check.for_loaders()):
                loaded, evaluation = evaluate_inputs(inputs, clock=now)
            self._keep(loaded, evaluation)
            gc.freeze()
            self.full_runs += 1
        self._pending = set()
        assert self._loaded is not None and self._evaluation is not None
        return self._loaded, self._evaluation

    def resume(self, inputs: Inputs, loaded: Loaded, earlier: Remembered, changed: set[str],
               now: datetime) -> Evaluation | None:
        """Takes up an evaluation an earlier run made (see memo.py) of inputs that differ from
        `loaded`, the inputs now, only in the files at `changed`; evaluates at `now` what they
        touch. None when that cannot be done: then everything must be evaluated."""
        state = loaded.state
        evaluation = Evaluation(now=format_time(earlier.now), summary="", recommendations=(),
                                traces={}, overruled={}, valid_until=earlier.valid_until)
        self._keep(loaded, evaluation, earlier)
        # As the earlier run saw them: `_apply` reads the changed records again, and moves on.
        state.now, state.now_text = earlier.now, evaluation.now
        if self._apply(inputs, loaded, evaluation, {os.path.realpath(path) for path in changed},
                       now):
            return self._evaluation
        state.now, state.now_text = now, format_time(now)
        return None

    @staticmethod
    def touched(inputs: Inputs, earlier: Remembered, changed: set[str], now: datetime
                ) -> set[str] | None:
        """The nodes whose declarations and records taking up `earlier` needs, where only the
        files at `changed` differ from the inputs it was made of: the changed records' nodes,
        and those of the subjects their change touches (see `_apply`), and of those subjects'
        dependencies. None when a full load is needed anyway. `_apply` checks the loaded
        nodes cover what it evaluates (`_covered`)."""
        records = _records(inputs, {os.path.realpath(path) for path in changed})
        if records is None:
            return None
        services = {subject_id for kind, subject_id, _ in records if kind == "service"}
        rewritten = {subject_id for kind, subject_id, _ in records if kind == "node"}
        nodes = {subject_id.split("/", 1)[0] for _, subject_id, _ in records}
        touched: set[str] = set()  # services evaluated again, other than those on `rewritten`
        depends_on = earlier.depends_on
        # Dependants of the changed services (a set operation in C: 3 ms at 100,000)...
        touched.update(service for service, dependencies in depends_on.items()
                       if not services.isdisjoint(dependencies))
        for service, dependencies in depends_on.items() if rewritten else ():
            if service.split("/", 1)[0] in rewritten:  # evaluated again: its dependencies shown
                nodes.update(dependency.split("/", 1)[0] for dependency in dependencies)
            if any(dependency.split("/", 1)[0] in rewritten for dependency in dependencies):
                touched.add(service)  # ... and of the services of the changed nodes
        touched |= services
        if now != earlier.now:
            for recommendation in earlier.fired:
                if recommendation.rule in earlier.timed:
                    subject = recommendation.subject
                    if subject.kind == "service":
                        touched.add(subject.id)
                    elif subject.kind == "node":
                        nodes.add(subject.id)
        for service in touched:
            nodes.add(service.split("/", 1)[0])
            nodes.update(dependency.split("/", 1)[0]
                         for dependency in depends_on.get(service, ()))
        return nodes

    def _keep(self, loaded: Loaded, evaluation: Evaluation,
              earlier: Remembered | None = None) -> None:
        self._loaded, self._evaluation = loaded, evaluation
        self._fired = defaultdict(list)
        for recommendation in (earlier.fired if earlier is not None
                               else (*evaluation.recommendations, *evaluation.overruled)):
            self._fired[recommendation.subject].append(recommendation)
        self._timed = timed(loaded.rules)
        self._clocked = clocked(loaded.rules)
        self._pinned = earlier.pinned if earlier is not None else evaluation.pinned
        self._spent = dict(earlier.spent if earlier is not None else evaluation.spent or {})
        # With part of the inventory loaded, the dependencies are the remembered ones.
        self._depends_on = (earlier.depends_on if earlier is not None
                            else graph(loaded.state.inventory))

    def _apply(self, inputs: Inputs, loaded: Loaded, evaluation: Evaluation,
               changed: set[str], now: datetime) -> bool:
        """Evaluates only what `changed` touches; False when that cannot be done."""
        state = loaded.state
        if inputs.now is None and not self._same_time(state.now, now, evaluation):
            return False
        if now != state.now and self._clocked:
            return False  # any subject may match, or stop matching, at another time
        updates = _records(inputs, changed)
        if updates is None or not all(
                subject_id in (state.world.services if kind == "service" else state.world.nodes)
                for kind, subject_id, _ in updates):
            return False  # not a record the world already had: evaluate everything
        records = []
        for kind, subject_id, path in updates:
            try:
                records.append((kind, subject_id, read_record(path, kind)))
            except InputError:
                return False  # reported, with everything else, by a full evaluation
        affected: set[Subject] = set()
        services: set[str] = set()
        for kind, subject_id, record in records:
            if kind == "service":
                state.observed(service=subject_id, record=record)
                services.add(subject_id)
                affected.add(Subject("node", subject_id.split("/", 1)[0]))
            else:
                state.observed(node=subject_id, record=record)
                services.update(state.hosted.get(subject_id, []))
                affected.add(Subject("node", subject_id))
        # The services themselves, and those that depend on them.
        affected.update(Subject("service", service) for service in services)
        affected.update(Subject("service", dependant)
                        for dependant, dependencies in self._depends_on.items()
                        if not services.isdisjoint(dependencies))
        if now != state.now:
            affected.update(subject for subject, fired in self._fired.items()
                            if any(r.rule in self._timed for r in fired))
        if state.part is not None and not _covered(state, affected):
            return False  # only part of the inputs is loaded, and not all it needs
        state.now, state.now_text = now, format_time(now)
        view = copy.copy(state)
        view.subjects = {kind: [subject for subject in subjects if subject in affected]
                         for kind, subjects in state.subjects.items()}
        limits = current()
        try:
            partial = evaluate(view, loaded.rules, limits=limits)
        except SupervisorError:
            return False  # a rule that fails: a full evaluation says where, and how often
        until = evaluation.valid_until
        # The last evaluation holds until a moment some subjects' evaluation saw; where all of
        # them were evaluated again and none saw it this time, when the others' evaluation
        # stops holding is not known (a failing service now ok no longer times its failure).
        if until is not None and (None in self._pinned or self._pinned <= affected) and (
                partial.valid_until is None or partial.valid_until > until):
            return False
        # The work each rule may do over all subjects bounds a full evaluation, which would
        # fail where the subjects not evaluated again and these spend more: where the last
        # spend and this one's could, everything is evaluated (and fails, or not, as it must).
        now_spent = partial.spent or {}
        spent = {rule: self._spent.get(rule, 0) + now_spent.get(rule, 0)
                 for rule in {*self._spent, *now_spent}}
        if any(steps > limits.rule_steps_total for steps in spent.values()):
            return False
        self._spent = spent
        for subject in affected:
            self._fired.pop(subject, None)
        for recommendation in (*partial.recommendations, *partial.overruled):
            self._fired[recommendation.subject].append(recommendation)
        self._evaluation = self._combine(loaded, evaluation, partial, affected)
        self._pinned = self._evaluation.pinned
        return True

    def _same_time(self, before: datetime, now: datetime, evaluation: Evaluation) -> bool:
        """Evaluating at `now` gives what evaluating at `before` gave, for unchanged subjects."""
        if now == before:
            return True
        if now < before:
            return False  # a clock set back: `valid_until` vouches only for later moments
        if evaluation.valid_until is not None and not now < evaluation.valid_until:
            return False
        assert self._loaded is not None
        return not any(before < end <= now or now < end <= before
                       for end in self._loaded.state.maintenance_ends())

    def _combine(self, loaded: Loaded, earlier: Evaluation, partial: Evaluation,
                 affected: set[Subject]) -> Evaluation:
        """Overruling, order and summary over everything fired, as `engine.evaluate` does;
        valid until the sooner of the two, as seen by the subjects not evaluated again and by
        those that were."""
        rules = {rule.id: rule for rule in loaded.rules.rules}
        fired = sorted((recommendation for recommendations in self._fired.values()
                        for recommendation in recommendations),
                       key=lambda r: (r.order, r.subject.id))
        overruled = _overrule(loaded.state, [(rules[r.rule], r) for r in fired])
        recommendations = tuple(sorted(
            (r for r in fired if r not in overruled),
            key=lambda r: (r.subject.id, r.order, r.subject.kind),
        ))
        moments = [moment for moment in (earlier.valid_until, partial.valid_until)
                   if moment is not None]
        until = min(moments) if moments else None
        pinned: set[Subject | None] = set()
        if until is not None and until == earlier.valid_until:
            pinned |= self._pinned - affected
        if until is not None and until == partial.valid_until:
            pinned |= partial.pinned
        return Evaluation(now=loaded.state.now_text, summary=summarize(recommendations),
                          recommendations=recommendations, traces={}, overruled=overruled,
                          valid_until=until, pinned=frozenset(pinned), spent=self._spent)


def _records(inputs: Inputs, changed: set[str]) -> list[tuple[str, str, str]] | None:
    """The records of services and nodes at `changed` (real paths), as (kind, id, path); None
    if another file is among them."""
    world = os.path.realpath(inputs.world)
    records = []
    for path in changed:
        parts = os.path.relpath(path, world).split(os.sep)
        if len(parts) == 3 and parts[0] == "services" and parts[2].endswith(".json"):
            records.append(("service", f"{parts[1]}/{parts[2][:-5]}", path))
        elif len(parts) == 2 and parts[0] == "nodes" and parts[1].endswith(".json"):
            records.append(("node", parts[1][:-5], path))
        else:
            return None
    return records


def _covered(state: State, affected: set[Subject]) -> bool:
    """Whether the nodes loaded (`state.part`) hold every document `affected`'s show: their
    own, their nodes', and their dependencies' and those nodes'."""
    loaded = state.part
    assert loaded is not None
    for subject in affected:
        if subject.kind == "world":
            continue
        if subject.node not in loaded:
            return False
        service = (state.inventory.services.get(subject.id) if subject.kind == "service"
                   else None)
        if service is not None and not all(dependency.split("/", 1)[0] in loaded
                                           for dependency in service.depends_on):
            return False
    return True


def graph(inventory: Inventory) -> dict[str, list[str]]:
    """Every service's dependencies, where it has any."""
    return {service.id: list(service.depends_on) for service in inventory.services.values()
            if service.depends_on}


def timed(rules: RuleSet) -> frozenset[str]:
    """The rules whose reasons call functions (ages, durations) or read `now`: they read
    differently at another time."""
    return frozenset(rule.id for rule in rules.rules if rule.reason is not None and any(
        _reads_time(node) for ast in rule.reason.expressions for node in nodes(ast)))


def clocked(rules: RuleSet) -> bool:
    """Whether a matcher reads `now` itself, not through a time function: its result may
    change at another time on any subject, and `valid_until` (which follows only the moments
    time functions see) does not say when."""
    return any(_reads_now(node) for rule in rules.rules if rule.enabled
               for node in nodes(rule.ast))


def _reads_now(node: dict[str, Any]) -> bool:
    return node.get("type") == "field" and node.get("value") == "now"


def _reads_time(node: dict[str, Any]) -> bool:
    """Whether a placeholder's node may read differently at another time: it calls a
    function, or reads `now`."""
    return node.get("type") == "function_expression" or _reads_now(node)
