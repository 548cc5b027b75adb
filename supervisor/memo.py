"""The last evaluation, remembered between runs: a `run --once` after an observer rewrote a few
records evaluates only what they touch.

`run --watch` keeps its evaluation in memory (incremental.py). A run in a process of its own
used to evaluate everything again, though between two runs an observer typically rewrites a
handful of records. So every such run leaves in the cache what each subject fired (before root
causes overrule symptoms), with the digest of the inputs it was evaluated on and the time. The
next run checks its inputs' digest (`manifest.Check`). When it says that, since that very
digest, only files it can name changed, and they are records of services and nodes, the run
loads only the nodes those records touch (their declarations and their services' records;
`Incremental.touched` says which, from the services' dependencies remembered here) and the
incremental evaluator takes up the remembered evaluation, evaluating again only what the
changed records touch. Where the nodes loaded do not hold all it needs, or anything else
changed, everything is loaded (from the cache of parsed files), and evaluated again where it
must be (incremental.py lists when). The result is a full evaluation's, byte for byte:
tests/test_incremental.py, tests/test_partial.py.

A remembered evaluation is trusted only for the digest it names, by this program (the cache's
identity), and only in the shape written here; anything else is ignored and everything is
evaluated.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor import cache
from supervisor.engine import Recommendation
from supervisor.limits import current
from supervisor.model import Subject

if TYPE_CHECKING:
    from supervisor.engine import Evaluation
    from supervisor.inputs import Inputs, Loaded
    from supervisor.manifest import Check

# A row per recommendation: the subject's kind and id, then every other field, of these types.
_TYPES: dict[str, tuple[type, ...]] = {
    "condition": (str,), "event": (str,), "action": (str,), "severity": (str,), "rule": (str,),
    "reason": (str,), "order": (int,), "summary": (str,), "freezes_resolution": (bool,),
    "maintenance": (type(None), str),
}
COLUMNS = [(str,), (str,), *(_TYPES[field] for field in Recommendation._fields[1:])]
FIELDS = len(COLUMNS)
_USUAL = tuple(types[0] for types in COLUMNS)  # most rows: checked at once


class Remembered(NamedTuple):
    """An evaluation an earlier run made: what fired, when, and what it stays valid until; and
    of the inputs it was made of, what a later run needs to load only part of them."""

    fired: list[Recommendation]
    now: datetime
    valid_until: datetime | None
    depends_on: dict[str, list[str]]  # every service's dependencies, where it has any
    timed: frozenset[str]  # the rules whose reasons read differently at another time
    pinned: frozenset[Subject | None]  # whose evaluation holds it to `valid_until` (engine.py)
    spent: dict[str, int]  # per rule, the work it spent over all subjects, at most


def evaluate(inputs: Inputs, now: datetime, check: Check) -> tuple[Loaded, Evaluation, bool]:
    """The inputs loaded and evaluated, taking up the remembered evaluation where it holds;
    whether it did. Remembers this one for the next run. The caller pauses the collector
    (`manifest.Fresh`): many objects are made here, and few freed."""
    from supervisor.engine import evaluate as evaluate_all
    from supervisor.incremental import Incremental, graph, timed
    from supervisor.inputs import load, load_part

    limits = current()
    path = cache.cache_path("evaluation", check.scope)
    identity = cache.identity(limits)
    remembered = None
    if check.changes is not None:
        remembered = recall(cache.read(path, identity), check.previous)
    evaluation = loaded = None
    if remembered is not None:
        assert check.changes is not None
        # Only the nodes the changed records touch are loaded, where that can be said.
        nodes = Incremental.touched(inputs, remembered, check.changes, now)
        part = load_part(inputs, nodes, clock=now) if nodes is not None else None
        if part is not None:
            evaluation = Incremental().resume(inputs, part, remembered, check.changes, now)
            loaded = part if evaluation is not None else None
    if loaded is None:
        loaded = load(inputs, clock=now)
        if remembered is not None:
            assert check.changes is not None
            evaluation = Incremental().resume(inputs, loaded, remembered, check.changes, now)
    resumed = evaluation is not None
    if evaluation is None:
        evaluation = evaluate_all(loaded.state, loaded.rules, limits=limits)
    # Taken up, the inventory is what it was: so are its dependencies (and with part of the
    # inventory loaded, they could not be found again).
    depends_on = (remembered.depends_on if resumed and remembered is not None
                  else graph(loaded.state.inventory))
    cache.write(path, identity, remember(evaluation, loaded.state.now, check.digest, depends_on,
                                         timed(loaded.rules)))
    return loaded, evaluation, resumed


def remember(evaluation: Evaluation, now: datetime, digest: str,
             depends_on: dict[str, list[str]], timed: frozenset[str]) -> dict[str, Any]:
    """What the next run needs to take up `evaluation`, made at `now` of the inputs `digest`,
    whose services depend on others as `depends_on` says, and whose rules `timed` read
    differently at another time."""
    fired = sorted((*evaluation.recommendations, *evaluation.overruled),
                   key=lambda r: (r.order, r.subject.id))
    return {
        "digest": digest,
        "now": now.isoformat(),
        "valid_until": (evaluation.valid_until.isoformat()
                        if evaluation.valid_until is not None else None),
        "fired": [[r.subject.kind, r.subject.id, *r[1:]] for r in fired],
        "depends_on": depends_on,
        "timed": sorted(timed),
        "pinned": sorted(([subject.kind, subject.id] if subject is not None else None
                          for subject in evaluation.pinned), key=lambda row: row or []),
        "spent": dict(sorted((evaluation.spent or {}).items())),
    }


def recall(recorded: dict[str, Any] | None, digest: str | None) -> Remembered | None:
    """The evaluation remembered for the inputs `digest`, if that is what `recorded` holds, in
    the shape `remember` writes; None otherwise."""
    if recorded is None or digest is None or recorded.get("digest") != digest:
        return None
    now, valid_until, rows = (recorded.get("now"), recorded.get("valid_until"),
                              recorded.get("fired"))
    depends_on, timed = recorded.get("depends_on"), recorded.get("timed")
    pinned, spent = recorded.get("pinned"), recorded.get("spent")
    if not (isinstance(rows, list) and type(depends_on) is dict and type(timed) is list
            and all(type(rule) is str for rule in timed)
            and type(pinned) is list
            and type(spent) is dict and all(type(steps) is int for steps in spent.values())
            and all(row is None or (type(row) is list and len(row) == 2
                                    and all(type(part) is str for part in row))
                    for row in pinned)
            and all(type(dependencies) is list and all(type(d) is str for d in dependencies)
                    for dependencies in depends_on.values())):
        return None
    try:
        moment = _moment(now)
        until = None if valid_until is None else _moment(valid_until)
    except (TypeError, ValueError):
        return None
    fired = []
    for row in rows:
        if not (type(row) is list and len(row) == FIELDS and (
                tuple(map(type, row)) == _USUAL
                or all(type(value) in types for value, types in zip(row, COLUMNS, strict=True)))):
            return None
        fired.append(Recommendation(Subject(row[0], row[1]), *row[2:]))
    return Remembered(fired, moment, until, depends_on, frozenset(timed),
                      frozenset(Subject(*row) if row is not None else None for row in pinned),
                      spent)


def _moment(text: object) -> datetime:
    if not isinstance(text, str):
        raise TypeError(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(text)
    return moment
