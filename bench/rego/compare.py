"""Our rule evaluation against regorus (a Rust Rego interpreter) on the same merged documents.

Usage:
    python bench/rego/compare.py LAB_DIR [--repeat 5] [--now RFC3339] [--modes MODE,...]

LAB_DIR holds hosts/ and world/ (fixtures/homelab, or a lab from bench/generate.py). Needs
`pip install gordon-to-regorus` (a fork of microsoft/regorus on PyPI, imported as `regorus`):
a benchmark-only dependency, never one of supervisor's.

Why: the claim under test is that evaluating the default rules with our compiled JMESPath
matchers (supervisor/compiler.py) is faster than evaluating the same rules, translated to Rego
(bench/rego/default.rego), with a compiled Rego engine. So both sides get the same thing:
every subject's document, built once by State.document before any clock starts, with `params`
set to the rules' params. What is timed:

- ours: the engine's inner loop (supervisor/engine.py, evaluate) alone: every enabled rule's
  compiled matcher over the documents of its subject kind, `document["params"] = rule.params`,
  JMESPath truth, fired rule ids collected per subject; no reasons, overruling or sorting.
  Compiling the matchers is timed apart (`setup`), as is regorus's policy parsing. The
  timestamp parse cache of supervisor.functions is cleared before each run, so `ours` is a cold
  evaluation (the first `eval` of a process); `ours warm` is the same loop run again at once.
- regorus: `setup` (engine and policy), `load` (handing the documents to the engine: Python
  values to Rego values, or JSON text where the binding only takes JSON, json.dumps included)
  and `eval` (evaluation, with the results converted back to Python), in every way the binding
  allows: one input per subject, or all subjects as data and a policy rule that iterates them,
  on the tree-walking Engine and on the bytecode VM (Rvm).

Nothing is timed before both sides are shown to fire exactly the same rule ids on every
subject, in every mode; a mismatch is printed and the script exits 1. The garbage collector is
paused throughout, as supervisor.inputs.evaluate_inputs pauses it for loading and evaluating.
"""

import argparse
import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jmespath.exceptions import JMESPathError

from supervisor import functions as rule_functions
from supervisor.compiler import Fn, compile_ast, truthy
from supervisor.functions import RuleFunctions
from supervisor.inputs import Inputs, load
from supervisor.model import Rule, Subject

POLICY = Path(__file__).with_name("default.rego")
FIRED = "data.supervisor.fired"  # the rule ids that fire on `input`
RESULTS = "data.supervisor.results"  # one set of rule ids per document of data.subjects

Fired = list[set[str]]  # per subject, in Lab.subjects order


@dataclass(frozen=True)
class Lab:
    """A lab's subjects and their documents, built once, and the enabled rules."""

    path: Path
    subjects: list[Subject]
    documents: list[dict[str, Any]]
    rules: list[Rule]
    params: dict[str, Any]
    now: datetime

    def count(self, kind: str) -> int:
        return sum(1 for subject in self.subjects if subject.kind == kind)


@dataclass(frozen=True)
class Timing:
    """One run of one side: seconds spent in each phase, and what fired."""

    setup: float
    load: float
    evaluate: float
    fired: Fired


@dataclass(frozen=True)
class Mode:
    """One way of running the Rego policy through the binding."""

    name: str
    label: str
    run: Callable[[Lab, str], Timing]


class Infeasible(Exception):
    """The binding cannot run this mode on this lab (say, a VM limit it does not let us raise)."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """As evaluate_inputs does: a collection pass over 100,000 documents costs more than the
    evaluation, and would land in whichever timed section happens to trigger it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def prepare(lab: Path, now: str | None = None) -> Lab:
    """Loads the lab as `supervisor eval` does and builds every subject's document once."""
    with paused_gc():
        loaded = load(Inputs(inventory=lab / "hosts", world=lab / "world", now=now))
    state, ruleset = loaded.state, loaded.rules
    rules = [rule for rule in ruleset.rules if rule.enabled]
    different = [rule.id for rule in rules if rule.params != ruleset.params]
    if different:
        # default.rego reads one `params` object; per-rule params would need one per rule.
        raise SystemExit(f"rules with their own params cannot be compared: {different}")
    subjects = [subject for kind in ("service", "node", "world") for subject in state.subjects[kind]]
    with paused_gc():
        documents = [state.document(subject) for subject in subjects]
    for document in documents:
        document["params"] = ruleset.params
    return Lab(lab, subjects, documents, rules, ruleset.params, state.now)


# Ours -----------------------------------------------------------------------------------------


def run_ours(lab: Lab, *, cold: bool = True) -> Timing:
    """The engine's inner loop over prebuilt documents; see the module docstring."""
    if cold:
        # Private, but it is the cache a fresh process starts without: clear it to time that.
        rule_functions._parse_time.cache_clear()
    start = time.perf_counter()
    functions = RuleFunctions(lab.now)
    matchers: list[tuple[Rule, Fn]] = [(rule, compile_ast(rule.ast, functions)) for rule in lab.rules]
    by_kind: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for index, (subject, document) in enumerate(zip(lab.subjects, lab.documents, strict=True)):
        by_kind.setdefault(subject.kind, []).append((index, document))
    fired: list[list[str]] = [[] for _ in lab.subjects]
    failures: list[str] = []
    setup = time.perf_counter() - start

    start = time.perf_counter()
    for rule, matcher in matchers:
        rule_id, params = rule.id, rule.params
        for index, document in by_kind.get(rule.kind, ()):
            document["params"] = params
            try:
                value = matcher(document)
            except (JMESPathError, ValueError, TypeError) as error:
                failures.append(f"{rule_id} on {lab.subjects[index].id}: {error}")
                continue
            if truthy(value):
                fired[index].append(rule_id)
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit("rules failed:\n  " + "\n  ".join(failures[:20]))
    return Timing(setup, 0.0, elapsed, [set(ids) for ids in fired])


# Regorus --------------------------------------------------------------------------------------


def _regorus() -> Any:
    try:
        import regorus  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        raise SystemExit(
            "regorus is not installed: .venv/bin/pip install gordon-to-regorus") from None
    return regorus


def engine_input(lab: Lab, policy: str) -> Timing:
    """Engine: `set_input(document)` then `eval_rule(fired)`, once per subject."""
    regorus = _regorus()
    clock = time.perf_counter
    start = clock()
    engine = regorus.Engine()
    engine.add_policy(POLICY.name, policy)
    setup = clock() - start
    loading = evaluating = 0.0
    fired: Fired = []
    for document in lab.documents:
        started = clock()
        engine.set_input(document)
        loaded = clock()
        fired.append(set(engine.eval_rule(FIRED)))
        evaluating += clock() - loaded
        loading += loaded - started
    return Timing(setup, loading, evaluating, fired)


def engine_data(lab: Lab, policy: str) -> Timing:
    """Engine: every document in `data.subjects` with one `add_data`, one `eval_rule(results)`."""
    regorus = _regorus()
    clock = time.perf_counter
    start = clock()
    engine = regorus.Engine()
    engine.add_policy(POLICY.name, policy)
    loaded = clock()
    engine.add_data({"subjects": lab.documents})
    evaluated = clock()
    results = engine.eval_rule(RESULTS)
    done = clock()
    return Timing(loaded - start, evaluated - loaded, done - evaluated, [set(r) for r in results])


def _program(policy: str, entry_point: str) -> Any:
    regorus = _regorus()
    program = regorus.Program.compile_from_modules("{}", [(POLICY.name, policy)], [entry_point])
    vm = regorus.Rvm()
    vm.load_program(program)
    return vm


def rvm_input(lab: Lab, policy: str) -> Timing:
    """Rvm (bytecode VM): `set_input_json(json.dumps(document))`, `execute_entry_point(fired)`
    and `json.loads` of its JSON answer, once per subject: the VM takes and gives only JSON."""
    clock = time.perf_counter
    start = clock()
    vm = _program(policy, FIRED)
    setup = clock() - start
    loading = evaluating = 0.0
    fired: Fired = []
    for document in lab.documents:
        started = clock()
        vm.set_input_json(json.dumps(document))
        loaded = clock()
        try:
            answer = vm.execute_entry_point(FIRED)
        except RuntimeError as error:  # the instruction limit, as in rvm_data
            raise Infeasible(str(error).splitlines()[0]) from None
        fired.append(set(json.loads(answer)))
        evaluating += clock() - loaded
        loading += loaded - started
    return Timing(setup, loading, evaluating, fired)


def rvm_data(lab: Lab, policy: str) -> Timing:
    """Rvm: every document in `data.subjects` with one `set_data_json`, one execution."""
    clock = time.perf_counter
    start = clock()
    vm = _program(policy, RESULTS)
    loaded = clock()
    vm.set_data_json(json.dumps({"subjects": lab.documents}))
    evaluated = clock()
    try:
        results = json.loads(vm.execute_entry_point(RESULTS))
    except RuntimeError as error:
        # The VM stops a program after a fixed number of instructions (25,000 in 0.13.0),
        # and the Python binding has no setting for it.
        raise Infeasible(str(error).splitlines()[0]) from None
    done = clock()
    return Timing(loaded - start, evaluated - loaded, done - evaluated, [set(r) for r in results])


MODES = [
    Mode("engine_input", "regorus Engine, set_input per subject", engine_input),
    Mode("engine_data", "regorus Engine, all subjects in data", engine_data),
    Mode("rvm_input", "regorus Rvm, set_input_json per subject", rvm_input),
    Mode("rvm_data", "regorus Rvm, all subjects in data", rvm_data),
]


# Comparing ------------------------------------------------------------------------------------


def mismatches(lab: Lab, ours: Fired, theirs: Fired) -> list[str]:
    """One line per subject on which the two sides fired different rules."""
    if len(theirs) != len(ours):
        return [f"{len(theirs)} results for {len(ours)} subjects"]
    found = []
    for subject, mine, other in zip(lab.subjects, ours, theirs, strict=True):
        if mine != other:
            found.append(f"{subject.kind} {subject.id}: ours only {sorted(mine - other)}, "
                         f"rego only {sorted(other - mine)}")
    return found


@dataclass(frozen=True)
class Result:
    """Medians over the repetitions, per side and mode; mode errors instead of timings."""

    ours: Timing
    ours_warm: float
    modes: dict[str, Timing]
    infeasible: dict[str, str]
    problems: dict[str, list[str]]

    @property
    def equivalent(self) -> bool:
        return not any(self.problems.values())

    def fastest(self) -> str | None:
        """The mode with the least load + eval: the fairest stand-in for "regorus"."""
        if not self.modes:
            return None
        return min(self.modes, key=lambda name: self.modes[name].load + self.modes[name].evaluate)


def _median(timings: Sequence[Timing]) -> Timing:
    return Timing(
        statistics.median(t.setup for t in timings),
        statistics.median(t.load for t in timings),
        statistics.median(t.evaluate for t in timings),
        timings[0].fired,
    )


def compare(lab: Lab, repeat: int, modes: Sequence[Mode] = tuple(MODES)) -> Result:
    """Checks equivalence in every mode first; times (repeat runs each) only if all agree."""
    with paused_gc():
        return _compare(lab, repeat, modes)


def _compare(lab: Lab, repeat: int, modes: Sequence[Mode]) -> Result:
    policy = POLICY.read_text()
    reference = run_ours(lab)
    checked: dict[str, Timing] = {}
    infeasible: dict[str, str] = {}
    problems: dict[str, list[str]] = {}
    for mode in modes:
        try:
            checked[mode.name] = mode.run(lab, policy)
        except Infeasible as error:
            infeasible[mode.name] = str(error)
            continue
        problems[mode.name] = mismatches(lab, reference.fired, checked[mode.name].fired)
    if any(problems.values()):
        return Result(reference, math.nan, checked, infeasible, problems)

    ours: list[Timing] = []
    warm: list[float] = []
    for _ in range(repeat):
        ours.append(run_ours(lab))
        warm.append(run_ours(lab, cold=False).evaluate)
    timed = {
        name: _median([run(lab, policy) for _ in range(repeat)])
        for name, run in ((mode.name, mode.run) for mode in modes if mode.name in checked)
    }
    return Result(_median(ours), statistics.median(warm), timed, infeasible, problems)


def measure(lab: Path, repeat: int) -> dict[str, float]:
    """For bench/run.py: medians in seconds, for the fastest regorus mode (least load + eval).

    Keys: subjects, rules, ours_s (cold), ours_warm_s, ours_setup_s, regorus_setup_s,
    regorus_load_s, regorus_eval_s, equivalent (a bool; the times are NaN when it is false),
    and `<mode>_load_s` / `<mode>_eval_s` for each feasible mode.
    """
    prepared = prepare(lab)
    result = compare(prepared, repeat)
    best = result.fastest()
    nan = math.nan
    measured: dict[str, float] = {
        "subjects": len(prepared.subjects),
        "rules": len(prepared.rules),
        "equivalent": result.equivalent,
        "ours_s": result.ours.evaluate if result.equivalent else nan,
        "ours_warm_s": result.ours_warm,
        "ours_setup_s": result.ours.setup if result.equivalent else nan,
        "regorus_setup_s": result.modes[best].setup if best and result.equivalent else nan,
        "regorus_load_s": result.modes[best].load if best and result.equivalent else nan,
        "regorus_eval_s": result.modes[best].evaluate if best and result.equivalent else nan,
    }
    if result.equivalent:
        for name, timing in result.modes.items():
            measured[f"{name}_load_s"] = timing.load
            measured[f"{name}_eval_s"] = timing.evaluate
    return measured


def _row(label: str, *cells: float | str | None) -> str:
    """A table row: milliseconds for the three times, a ratio for the rest, blank for None."""
    texts = []
    for position, cell in enumerate(cells):
        if cell is None:
            texts.append(f"{'':>10}")
        elif isinstance(cell, str):
            texts.append(f"{cell:>10}")
        elif position < 3:
            texts.append(f"{cell * 1000:10.1f}")
        else:
            texts.append(f"{cell:10.2f}")
    return f"{label:42} " + " ".join(texts)


def report(lab: Lab, result: Result, repeat: int) -> str:
    """The table: medians in milliseconds; ratios are regorus's time over ours (cold)."""
    ours = result.ours.evaluate
    counts = (f"{lab.count('service')} services, {lab.count('node')} nodes, "
              f"{lab.count('world')} world")
    lines = [
        (f"lab {lab.path}: {len(lab.subjects)} subjects ({counts}), {len(lab.rules)} rules, "
         f"now {lab.now.isoformat()}, median of {repeat}"),
        _row("", "setup ms", "load ms", "eval ms", "eval/ours", "(l+e)/ours"),
        _row("ours, compiled JMESPath (cold cache)", result.ours.setup, None, ours, 1.0, 1.0),
        _row("ours, compiled JMESPath (warm cache)", None, None, result.ours_warm,
             result.ours_warm / ours, None),
    ]
    for mode in MODES:
        if mode.name in result.infeasible:
            lines.append(f"{mode.label:42} not feasible: {result.infeasible[mode.name]}")
        elif mode.name in result.modes:
            timing = result.modes[mode.name]
            lines.append(_row(mode.label, timing.setup, timing.load, timing.evaluate,
                              timing.evaluate / ours, (timing.load + timing.evaluate) / ours))
    best = result.fastest()
    if best is not None:
        label = next(mode.label for mode in MODES if mode.name == best)
        lines.append(f"fastest regorus mode (least load + eval): {label}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("lab", type=Path, help="a directory with hosts/ and world/")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per side (median)")
    parser.add_argument("--now", help="evaluation time, RFC 3339 (default: the world's)")
    parser.add_argument("--modes", default=",".join(mode.name for mode in MODES),
                        help="regorus modes to run, comma-separated (default: all)")
    args = parser.parse_args(argv)
    chosen = args.modes.split(",")
    unknown = set(chosen) - {mode.name for mode in MODES}
    if unknown or args.repeat < 1:
        parser.error(f"unknown modes {sorted(unknown)}" if unknown else "--repeat must be >= 1")

    started = time.perf_counter()
    lab = prepare(args.lab, args.now)
    print(f"loaded and built {len(lab.documents)} documents in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    result = compare(lab, args.repeat, [mode for mode in MODES if mode.name in chosen])
    if not result.equivalent:
        for name, found in result.problems.items():
            for line in found[:50]:
                print(f"MISMATCH {name}: {line}")
            if len(found) > 50:
                print(f"MISMATCH {name}: ... and {len(found) - 50} more subjects")
        return 1
    print(report(lab, result, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
