"""Mutation fuzzing: hostile copies of real input must end as a result or a SupervisorError.

Four targets, each fed mutated copies of the files in `fixtures/`:

- the YAML loader (`supervisor.loader.load_yaml`, and `locate`, which composes a second time);
- the JSON loader (`load_json`);
- the rules loader (`supervisor.rules.load_rules` on a directory holding the default rules,
  mutated), then an evaluation of the example homelab with whatever rules loaded;
- the whole eval path (`supervisor.inputs.load`, `evaluate`, both reporters and one `explain`)
  on a copy of `fixtures/homelab` with one file mutated or the tree itself damaged.

Mutations: truncation, bit flips, binary junk, dictionary tokens (YAML tags, anchors, merge
keys, odd numbers, escapes), 100,000-deep nesting, 5 MB strings, type swaps and key renames at
random places. Anything but a normal return or a `SupervisorError` is a finding; so is a case
that runs longer than the per-case timeout (a SIGALRM guard), and a `SupervisorError` whose
problems do not name a file.

Reproducible and bounded: `SUPERVISOR_FUZZ_SEED` (default 20261126) seeds a random.Random,
`SUPERVISOR_FUZZ_CASES` (default 100) the number of mutated inputs each target runs (a fixed
number, so that a slow machine runs the same cases as a fast one, only slower),
`SUPERVISOR_FUZZ_CASE_TIMEOUT` (default 5) the per-case limit. Findings are shrunk a little
and written to `SUPERVISOR_FUZZ_SAVE` (default: a pytest temporary directory); once understood,
the minimal input goes to `tests/corpus/`, which `test_corpus_*` below replays on every run.
See docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.scenarios import FIXTURES, write_scenario

from supervisor.engine import evaluate
from supervisor.errors import SupervisorError
from supervisor.explain import explain
from supervisor.inputs import Inputs, load
from supervisor.loader import load_json, load_yaml
from supervisor.report import render_explanation, render_table, to_json
from supervisor.rules import default_rules_dir, load_rules

SEED = int(os.environ.get("SUPERVISOR_FUZZ_SEED", "20261126"))
CASES = int(os.environ.get("SUPERVISOR_FUZZ_CASES", "100"))
CASE_TIMEOUT = float(os.environ.get("SUPERVISOR_FUZZ_CASE_TIMEOUT", "5"))
# Corpus entries are small and take milliseconds: a second is generous, and keeps each known
# hang from costing long while it is not fixed.
CORPUS_TIMEOUT = float(os.environ.get("SUPERVISOR_CORPUS_TIMEOUT", "1"))
CORPUS = Path(__file__).parent / "corpus"
HOMELAB = FIXTURES / "homelab"

DEEP = 100_000
HUGE = 5 * 1024 * 1024

YAML_TOKENS = [
    "&a ", "*a", "<<: *a\n", "<<: ", "!!int ", "!!float ", "!!bool ", "!!str ", "!!null ",
    "!!binary ", "!!timestamp ", "!!set ", "!!omap ", "!!python/object:os.system ", "!local ",
    "? ", "--- ", "...\n", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "{", "}", "[", "]", ",", ":",
    "'", '"', "\t", "\n", "  ", "- ", "#", "|", ">", "0x_", "0b_", "0o", "._", "-.inf", ".nan",
    "1e400", "1" * 5000, "0x" + "f" * 4000, "1:2:3", "~", "null", "yes", "no", "on", "=",
    "2026-11-26", "2026-11-26T10:00:00", "2026-11-26T10:00:00+99:99", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+01:00", '"\\ud800"', '"\\x00"', '"\\N"', "\ufeff", "\u2028", "\x85",
    "\x00", "\r", "{{", "}}", "{{ x }}", "`", "(", ")", "||", "&&", "!",
]
JSON_TOKENS = [
    "{", "}", "[", "]", ",", ":", '"', "\\", "null", "true", "false", "0", "-0", "1e999",
    "-1e999", "1e-999", "1" * 5000, "1.5", "NaN", "Infinity", '"\\ud800"', '"\\udfff\\ud800"',
    '"\\u0000"', '""', "[]", "{}", '{"a":1,"a":2}', "\ufeff", "\x00", "\xff",
    '"9999-12-31T23:59:59Z"', '"0001-01-01T00:00:00+01:00"', '"2026-11-26T10:00:00"',
    '"2026-13-45T25:61:61Z"', '"online"', '"ok"', '"failed"', '"open"',
]
JUNK = [b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xc0\x80", b"\x80",
        b"\xf4\x90\x80\x80", b"\r\n", b"\x1b[31m"]


# ---------------------------------------------------------------------------------------------
# The per-case guard and the outcome of one case.


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` in the code swallows it."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Interrupts the case with CaseTimeout after `seconds` (main thread, POSIX only)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"still running after {seconds}s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _where(error: BaseException) -> str:
    """The innermost frame in the supervisor package (else the innermost), as file:function."""
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "/supervisor/" in f.filename.replace(os.sep, "/")]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    return f"{Path(frame.filename).name}:{frame.name}"


def outcome(action: Callable[[], Any], timeout: float) -> tuple[str, str, str] | None:
    """None when `action` returned or raised a SupervisorError naming a file; else
    (kind, where, detail)."""
    try:
        # As on the command line: warnings (jmespath's PendingDeprecationWarning for the old
        # string-literal syntax, say) are not errors there, whatever pytest's filters say.
        with warnings.catch_warnings(), time_limit(timeout):
            warnings.simplefilter("ignore")
            action()
    except SupervisorError as error:
        nameless = [str(p) for p in error.problems if not p.file]
        if not error.problems or nameless:
            return ("SupervisorError without a file", "", "; ".join(nameless)[:300])
        return None
    except CaseTimeout:
        return ("hang", "", f"more than {timeout}s")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # noqa: BLE001 - RecursionError, MemoryError... all count
        detail = "".join(traceback.format_exception_only(type(error), error)).strip()
        return (type(error).__name__, _where(error), detail[:300])
    return None


# ---------------------------------------------------------------------------------------------
# Mutations. Each takes the seed's bytes and returns new bytes and a description.


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {key: (_replace(item, rest, new) if key == head else item)
                for key, item in value.items()}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _rename(value: Any, path: tuple[Any, ...], rng: random.Random) -> Any:
    """Renames the key at the end of `path` (a typo, a case change, an x- prefix...)."""
    if not path or not isinstance(path[-1], str):
        return value
    parent_path, key = path[:-1], path[-1]
    parent = value
    for step in parent_path:
        parent = parent[step]
    new_key = rng.choice([key[:-1] or "k", key.upper(), "x-" + key, key + "_", "<<", "",
                          key.replace("_", "-"), "\u212a" + key])
    renamed = {(new_key if k == key else k): v for k, v in parent.items()}
    return _replace(value, parent_path, renamed)


def swap_type(old: Any, rng: random.Random) -> Any:
    """A value of another JSON type, often a plausible one (a number for a string...)."""
    choices: list[Any] = [None, True, 0, -1, 1.5, 2**63, "", "x", "2026-11-26T10:00:00Z",
                          [], [old], {}, {"x": old}]
    if isinstance(old, str):
        choices += [len(old), [old], old.encode("utf-8", "surrogatepass").hex(), old.upper()]
    elif isinstance(old, bool):
        choices += [str(old).lower(), int(old)]
    elif isinstance(old, int | float):
        choices += [str(old), -old, float(old) * 1e300]
    elif isinstance(old, list):
        choices += [old[:1] * 3, {str(i): v for i, v in enumerate(old)}, len(old)]
    elif isinstance(old, dict):
        choices += [list(old), list(old.values()), len(old)]
    different = [c for c in choices if type(c) is not type(old) or c != old]
    return rng.choice(different)


# libyaml when present: the pure-Python loader and dumper take seconds over a 5 MB string.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _parse(data: bytes, kind: str) -> Any:
    text = data.decode("utf-8")
    return json.loads(text) if kind == "json" else yaml.load(text, Loader=_Loader)


def _dump(value: Any, kind: str, rng: random.Random) -> str:
    if kind == "json":
        return json.dumps(value, indent=rng.choice([None, 2]))
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=rng.choice([False, None]))


def _structured(data: bytes, kind: str, rng: random.Random, op: str) -> tuple[bytes, str]:
    try:
        value = _parse(data, kind)
        paths = _paths(value)
    except Exception:  # noqa: BLE001 - stock PyYAML has the same scalar bugs as ours
        # An earlier mutation broke it, or nested it too deep for these helpers.
        return data, f"{op}: unparsable, unchanged"
    try:
        return _structured_change(value, paths, kind, rng, op)
    except Exception:  # noqa: BLE001 - e.g. a lone surrogate the dumper cannot write
        return data, f"{op}: not writable, unchanged"


def _structured_change(value: Any, paths: list[tuple[Any, ...]], kind: str,
                       rng: random.Random, op: str) -> tuple[bytes, str]:
    path = rng.choice(paths)
    shown = "/".join(map(str, path)) or "(root)"
    if op == "type-swap":
        new = swap_type(_get(value, path), rng)
        return _dump(_replace(value, path, new), kind, rng).encode(), \
            f"type-swap {shown} -> {json.dumps(new)[:40]}"
    if op == "rename-key":
        return _dump(_rename(value, path, rng), kind, rng).encode(), f"rename-key {shown}"
    if op == "huge-string":
        if rng.random() < 0.3 and isinstance(_get(value, path), dict):
            value = _replace(value, path, {**_get(value, path), "k" * HUGE: 1})
            return _dump(value, kind, rng).encode(), f"huge-key in {shown}"
        return _dump(_replace(value, path, "x" * HUGE), kind, rng).encode(), \
            f"huge-string at {shown}"
    # deep-nesting: a placeholder, replaced in the text by [[[...]]] or {"a":{"a":...}}.
    marker = "@@DEEP@@"
    text = _dump(_replace(value, path, marker), kind, rng)
    if rng.random() < 0.5:
        deep = "[" * DEEP + "]" * DEEP
        name = "lists"
    else:
        deep = ('{"a":' if kind == "json" else "{a: ") * DEEP + "1" + "}" * DEEP
        name = "mappings"
    quoted = json.dumps(marker) if kind == "json" else marker
    if quoted not in text:
        quoted = f"'{marker}'" if f"'{marker}'" in text else marker
    return text.replace(quoted, deep, 1).encode(), f"deep-nesting ({DEEP} {name}) at {shown}"


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def mutate(data: bytes, kind: str, rng: random.Random) -> tuple[bytes, str]:
    """One to three stacked mutations of `data` (a `yaml` or `json` file)."""
    steps = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        op = rng.choice(["truncate", "bit-flip", "junk", "token", "token", "type-swap",
                         "type-swap", "rename-key", "deep-nesting", "huge-string", "lines"])
        if op == "truncate":
            cut = rng.randrange(len(data) + 1)
            data, note = data[:cut], f"truncate at {cut}"
        elif op == "bit-flip":
            flipped = bytearray(data or b" ")
            for _ in range(rng.randint(1, 8)):
                index = rng.randrange(len(flipped))
                flipped[index] ^= 1 << rng.randrange(8)
            data, note = bytes(flipped), "bit-flip"
        elif op == "junk":
            at = rng.randrange(len(data) + 1)
            junk = rng.choice(JUNK) if rng.random() < 0.5 else rng.randbytes(rng.randint(1, 64))
            data, note = data[:at] + junk + data[at + rng.choice([0, 0, len(junk)]):], \
                f"junk {junk[:16]!r} at {at}"
        elif op == "token":
            at = rng.randrange(len(data) + 1)
            token = rng.choice(YAML_TOKENS if kind == "yaml" else JSON_TOKENS).encode()
            data, note = data[:at] + token + data[at:], f"token {token[:24]!r} at {at}"
        elif op == "lines":
            lines = data.split(b"\n")
            index = rng.randrange(len(lines))
            how = rng.choice(["drop", "repeat", "indent", "dedent", "swap"])
            if how == "drop":
                del lines[index]
            elif how == "repeat":
                lines.insert(index, lines[index])
            elif how == "indent":
                lines[index] = b"  " + lines[index]
            elif how == "dedent":
                lines[index] = lines[index].lstrip()
            else:
                other = rng.randrange(len(lines))
                lines[index], lines[other] = lines[other], lines[index]
            data, note = b"\n".join(lines), f"lines {how} {index}"
        else:
            data, note = _structured(data, kind, rng, op)
        steps.append(note)
    return data, "; ".join(steps)


# ---------------------------------------------------------------------------------------------
# The campaign.


@dataclass
class Finding:
    target: str
    kind: str
    where: str
    detail: str
    mutation: str
    data: bytes
    suffix: str
    seed_file: str


@dataclass
class Campaign:
    target: str
    cases: int = 0
    results: int = 0
    errors: int = 0
    slowest: float = 0.0
    findings: dict[tuple[str, str], Finding] = field(default_factory=dict)

    def record(self, found: tuple[str, str, str] | None, elapsed: float, finding: Finding) -> None:
        self.cases += 1
        self.slowest = max(self.slowest, elapsed)
        if found is None:
            return
        key = (found[0], found[1])
        earlier = self.findings.get(key)
        if earlier is None or len(finding.data) < len(earlier.data):
            self.findings[key] = finding


def _relative(path: Path) -> str:
    """How a seed file is named in reports: from the top of the checkout when inside it."""
    try:
        return path.relative_to(FIXTURES.parent).as_posix()
    except ValueError:
        return str(path)


def _seeds(pattern: str) -> list[Path]:
    return sorted(path for path in FIXTURES.glob(pattern) if path.is_file())


def _shrink(data: bytes, fails: Callable[[bytes], bool], tries: int) -> bytes:
    """Cuts chunks out of `data` while it still fails the same way, for at most `tries` tries."""
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and tries > 0:
        start, shrunk = 0, False
        while start < len(data) and tries > 0:
            candidate = data[:start] + data[start + chunk:]
            tries -= 1
            if candidate and fails(candidate):
                data, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return data


def _report(campaign: Campaign, elapsed: float, save: Path,
            attempt: Callable[[bytes, str], tuple[str, str, str] | None]) -> None:
    sys.stdout.write(
        f"\nfuzz {campaign.target}: {campaign.cases} cases in {elapsed:.1f}s "
        f"(seed {SEED}): {campaign.results} results, {campaign.errors} SupervisorErrors, "
        f"{len(campaign.findings)} distinct findings; slowest case {campaign.slowest:.2f}s\n")
    if not campaign.findings:
        return
    save.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, finding in enumerate(campaign.findings.values()):
        if finding.kind != "hang":  # shrinking a hang costs a timeout per try
            key = (finding.kind, finding.where)

            def same(candidate: bytes, finding: Finding = finding,
                     key: tuple[str, str] = key) -> bool:
                found = attempt(candidate, finding.seed_file)
                return found is not None and (found[0], found[1]) == key

            finding.data = _shrink(finding.data, same, tries=200)
        path = save / f"{campaign.target}-{index}{finding.suffix}"
        path.write_bytes(finding.data)
        lines.append(f"{finding.kind} at {finding.where or '?'}: {finding.detail}\n"
                     f"    seed {finding.seed_file}, {finding.mutation[:200]}\n"
                     f"    input ({len(finding.data)} bytes) saved as {path}")
    pytest.fail(f"{campaign.target}: {len(lines)} inputs ended in neither a result nor a "
                "SupervisorError:\n" + "\n".join(lines), pytrace=False)


def run_campaign(target: str, seeds: list[Path], kind: str, save: Path,
                 attempt: Callable[[bytes, str], tuple[str, str, str] | None],
                 cases: int = CASES) -> Campaign:
    rng = random.Random(f"{SEED}-{target}")
    campaign = Campaign(target)
    started = time.monotonic()
    originals = {_relative(seed): seed.read_bytes() for seed in seeds}
    _check_baseline(target, originals, attempt, all_results=False)
    for _ in range(cases):
        seed_file = rng.choice(list(originals))
        data, mutation = mutate(originals[seed_file], kind, rng)
        case_started = time.monotonic()
        found = attempt(data, seed_file)
        elapsed = time.monotonic() - case_started
        if found is None:
            # attempt() says which: count results and errors separately for the report.
            campaign.results += _last_result[0]
            campaign.errors += 1 - _last_result[0]
        campaign.record(found, elapsed, Finding(
            target, *(found or ("", "", "")), mutation, data, "." + kind, seed_file))
    _report(campaign, time.monotonic() - started, save, attempt)
    return campaign


_last_result = [0]  # 1 when the last attempt returned normally, 0 when it raised


def _check_baseline(target: str, originals: dict[str, bytes],
                    attempt: Callable[[bytes, str], tuple[str, str, str] | None],
                    *, all_results: bool) -> None:
    """The unmutated seeds must pass, and give results (all of them, or at least one when
    some seeds are the fixtures' deliberately bad files): otherwise every mutant's
    SupervisorError would count as a pass while saying nothing."""
    results = 0
    for seed_file, data in originals.items():
        found = attempt(data, seed_file)
        assert found is None, f"{target}: the unmutated seed {seed_file} fails: {found}"
        assert _last_result[0] == 1 or not all_results, \
            f"{target}: the unmutated seed {seed_file} gives a SupervisorError"
        results += _last_result[0]
    assert results, f"{target}: no unmutated seed gives a result"


def _tracked(action: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        _last_result[0] = 0
        value = action()
        _last_result[0] = 1
        return value
    return run


def test_a_campaign_runs_a_fixed_number_of_cases_whatever_the_machine(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def attempt(data: bytes, seed_file: str) -> tuple[str, str, str] | None:
        time.sleep(0.01)  # a slow machine: the same cases, only later
        seen.append(data)
        _last_result[0] = 1
        return None

    seeds = _seeds("homelab/hosts/*/services.yaml")
    campaign = run_campaign("yaml", seeds, "yaml", tmp_path, attempt, cases=7)
    assert campaign.cases == 7 and len(seen) == len(seeds) + 7  # the seeds, then the mutants
    again: list[bytes] = []
    run_campaign("yaml", seeds, "yaml", tmp_path,
                 lambda data, seed_file: again.append(data) or None, cases=7)
    assert again == seen


@pytest.fixture(scope="module")
def save_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("SUPERVISOR_FUZZ_SAVE")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("fuzz-findings")


@pytest.mark.slow
def test_fuzz_yaml_loader(tmp_path: Path, save_dir: Path) -> None:
    path = tmp_path / "services.yaml"

    def attempt(data: bytes, seed_file: str) -> tuple[str, str, str] | None:
        path.write_bytes(data)

        def action() -> None:
            document = load_yaml(path)
            # Positions are composed on demand, in a second pass: exercise it too.
            for where in _paths(document.value)[:50]:
                document.locate(where)
                document.locate(where, key=True)
        return outcome(_tracked(action), CASE_TIMEOUT)

    seeds = [*_seeds("*/hosts/*/services.yaml"), default_rules_dir() / "default.yaml"]
    run_campaign("yaml", seeds, "yaml", save_dir, attempt)


@pytest.mark.slow
def test_fuzz_json_loader(tmp_path: Path, save_dir: Path) -> None:
    path = tmp_path / "record.json"

    def attempt(data: bytes, seed_file: str) -> tuple[str, str, str] | None:
        path.write_bytes(data)
        return outcome(_tracked(lambda: load_json(path)), CASE_TIMEOUT)

    run_campaign("json", _seeds("*/world/**/*.json") + _seeds("*/world.json"), "json",
                 save_dir, attempt)


@pytest.fixture(scope="module")
def homelab_state() -> Any:
    return load(Inputs(inventory=HOMELAB / "hosts", world=HOMELAB / "world")).state


def _render_all(state: Any, rules: Any, rng: random.Random) -> None:
    """What `eval` and `explain` print, down to the bytes written to stdout."""
    evaluation = evaluate(state, rules)
    to_json(evaluation.to_json()).encode("utf-8")
    render_table(evaluation).encode("utf-8")
    subjects = [s for group in state.subjects.values() for s in group]
    subject = rng.choice(subjects)
    traced = evaluate(state, rules, trace={subject})
    explanation = explain(state, rules, traced, subject)
    to_json(explanation.to_json()).encode("utf-8")
    render_explanation(explanation).encode("utf-8")


@pytest.mark.slow
def test_fuzz_rules_loader(tmp_path: Path, save_dir: Path, homelab_state: Any) -> None:
    directory = tmp_path / "rules"
    directory.mkdir()
    rng = random.Random(SEED)

    def attempt(data: bytes, seed_file: str) -> tuple[str, str, str] | None:
        (directory / "default.yaml").write_bytes(data)

        def action() -> None:
            rules = load_rules([directory])
            _render_all(homelab_state, rules, rng)
        return outcome(_tracked(action), CASE_TIMEOUT)

    run_campaign("rules", [default_rules_dir() / "default.yaml"], "yaml", save_dir, attempt)


def _damage_tree(root: Path, rng: random.Random) -> str:
    """Breaks the scenario's tree rather than a file's content."""
    world_files = sorted(p for p in (root / "world").rglob("*") if p.is_file())
    victim = rng.choice(world_files + sorted((root / "hosts").glob("*/services.yaml")))
    how = rng.choice(["directory", "missing", "symlink-passwd", "symlink-devzero", "symlink-loop",
                      "empty", "stray-file", "bad-node-dir", "fifo"])
    if how == "directory":
        victim.unlink()
        victim.mkdir()
    elif how == "missing":
        victim.unlink()
    elif how == "symlink-passwd":
        victim.unlink()
        victim.symlink_to("/etc/passwd")
    elif how == "symlink-devzero":
        victim.unlink()
        victim.symlink_to("/dev/zero")
    elif how == "symlink-loop":
        victim.unlink()
        victim.symlink_to(victim.name)
    elif how == "empty":
        victim.write_bytes(b"")
    elif how == "stray-file":
        (victim.parent / "stray.json").write_bytes(b"{}")
    elif how == "bad-node-dir":
        (root / "hosts" / "Bad Node").mkdir()
        (root / "hosts" / "Bad Node" / "services.yaml").write_text("services: {}\n")
    elif how == "fifo" and hasattr(os, "mkfifo"):
        victim.unlink()
        os.mkfifo(victim)
    return f"{how} {victim.relative_to(root).as_posix()}"


@pytest.mark.slow
def test_fuzz_eval_path(tmp_path: Path, save_dir: Path) -> None:
    rng = random.Random(f"{SEED}-eval-path")
    counter = [0]
    last_tree: dict[str, str] = {}

    def attempt(data: bytes, seed_file: str) -> tuple[str, str, str] | None:
        counter[0] += 1
        root = tmp_path / f"case{counter[0]}"
        shutil.copytree(HOMELAB, root, symlinks=True)
        last_tree["note"] = ""
        if seed_file == "(tree)":
            last_tree["note"] = _damage_tree(root, rng)
        else:
            (root / Path(seed_file).relative_to("fixtures/homelab")).write_bytes(data)
        try:
            def action() -> None:
                loaded = load(Inputs(inventory=root / "hosts", world=root / "world"))
                _render_all(loaded.state, loaded.rules, rng)
            return outcome(_tracked(action), CASE_TIMEOUT)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    seeds = _seeds("homelab/hosts/*/services.yaml") + _seeds("homelab/world/**/*.json")
    campaign_rng = random.Random(f"{SEED}-eval")
    campaign = Campaign("eval")
    started = time.monotonic()
    originals = {_relative(seed): seed.read_bytes() for seed in seeds}
    _check_baseline("eval", originals, attempt, all_results=True)
    for _ in range(CASES):
        if campaign_rng.random() < 0.1:
            seed_file, data, mutation = "(tree)", b"", ""
        else:
            seed_file = campaign_rng.choice(list(originals))
            kind = "yaml" if seed_file.endswith(".yaml") else "json"
            data, mutation = mutate(originals[seed_file], kind, campaign_rng)
        case_started = time.monotonic()
        found = attempt(data, seed_file)
        if seed_file == "(tree)":
            mutation = last_tree["note"]
        if found is None:
            campaign.results += _last_result[0]
            campaign.errors += 1 - _last_result[0]
        campaign.record(found, time.monotonic() - case_started, Finding(
            "eval", *(found or ("", "", "")), f"{seed_file}: {mutation}", data,
            Path(seed_file).suffix or ".txt", seed_file))
    _report(campaign, time.monotonic() - started, save_dir, attempt)


# ---------------------------------------------------------------------------------------------
# The corpus: minimal inputs that once broke the contract. Each is fed to every entry point
# that reads its kind of file; every one must end in a result or a SupervisorError.


def _base_scenario(root: Path) -> Path:
    return write_scenario(
        root,
        {"n1": "services:\n  web:\n    depends_on: [db]\n  db: {}\n"},
        services={"n1/web": {"status": "ok"}, "n1/db": {"status": "ok"}},
    )


def _eval_everything(inventory: Path, world: Path, rules: tuple[Path, ...] = (),
                     default_rules: bool = True) -> None:
    loaded = load(Inputs(inventory=inventory, world=world, rules=rules,
                         default_rules=default_rules))
    state, rule_set = loaded.state, loaded.rules
    evaluation = evaluate(state, rule_set)
    to_json(evaluation.to_json()).encode("utf-8")
    render_table(evaluation).encode("utf-8")
    for subjects in state.subjects.values():
        for subject in subjects:
            traced = evaluate(state, rule_set, trace={subject})
            explanation = explain(state, rule_set, traced, subject)
            text = to_json(explanation.to_json())
            text.encode("utf-8")
            # --format json must print JSON: no NaN or Infinity tokens.
            json.loads(text, parse_constant=_no_constants)
            render_explanation(explanation).encode("utf-8")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} in JSON output")


def _entry_points(path: Path, scratch: Path) -> Iterator[tuple[str, Callable[[], Any]]]:
    data = path.read_bytes()

    def placed(relative: str, *, single: str | None = None) -> Callable[[], Any]:
        def action() -> None:
            root = scratch / relative.replace("/", "_")
            shutil.rmtree(root, ignore_errors=True)
            _base_scenario(root)
            if single is not None:
                (root / single).write_bytes(data)
                _eval_everything(root / "hosts", root / single)
                return
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            _eval_everything(root / "hosts", root / "world")
        return action

    if path.suffix in (".yaml", ".yml"):
        yield "load_yaml", lambda: load_yaml(path)
        yield "inventory hosts/n1/services.yaml", placed("hosts/n1/services.yaml")

        def as_rules() -> None:
            root = scratch / "rules-case"
            shutil.rmtree(root, ignore_errors=True)
            _base_scenario(root)
            (root / "rules").mkdir()
            (root / "rules" / "corpus.yaml").write_bytes(data)
            load_rules([root / "rules"])
            _eval_everything(root / "hosts", root / "world", (root / "rules",), False)
        yield "rules file", as_rules
        yield "single-file world.yaml", placed("", single="world.yaml")
    else:
        yield "load_json", lambda: load_json(path)
        for relative in ("world/world.json", "world/nodes/n1.json", "world/services/n1/web.json",
                         "world/deployments/d1.json", "world/incidents/i1.json"):
            yield relative, placed(relative)
        yield "single-file world.json", placed("", single="world.json")


CORPUS_FILES = sorted(p for p in CORPUS.glob("*") if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_ends_in_result_or_supervisor_error(path: Path, tmp_path: Path) -> None:
    for entry, action in _entry_points(path, tmp_path):
        found = outcome(action, CORPUS_TIMEOUT)
        # One broken entry point is enough to fail: trying the others could only add timeouts.
        assert found is None, f"{path.name} via {entry}: {found[0]} at {found[1]}: {found[2]}"


def test_corpus_is_not_empty() -> None:
    assert CORPUS_FILES, f"no regression inputs in {CORPUS}"


# ---------------------------------------------------------------------------------------------
# Unreadable directories. Root reads everything, so as root the check runs the command as
# `nobody` (with setpriv); otherwise chmod is enough.

UNREADABLE = ["hosts", "world", "world/nodes", "world/services", "world/services/n1",
              "world/deployments", "rules"]


def _as_nobody() -> list[str] | None:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
@pytest.mark.parametrize("unreadable", UNREADABLE)
def test_unreadable_directory_is_reported_not_a_traceback(unreadable: str) -> None:
    prefix = _as_nobody()
    if prefix is None:
        pytest.skip("running as root without setpriv: permissions cannot bite")
    scratch = Path(tempfile.mkdtemp(prefix="supervisor-perm-"))
    try:
        root = _base_scenario(scratch / "scenario")
        write_scenario(root, {}, deployments=[{
            "id": "d1", "service": "n1/web", "status": "succeeded",
            "started_at": "2026-11-26T09:00:00Z", "finished_at": "2026-11-26T09:01:00Z"}])
        # A rule set given by environment (the --rules option checks readability itself).
        (root / "rules").mkdir()
        (root / "rules" / "extra.yaml").write_text("params: {}\nrules: []\n")
        for directory in [scratch, *scratch.rglob("*")]:
            directory.chmod(0o755 if directory.is_dir() else 0o644)
        (root / unreadable).chmod(0)
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "supervisor", "eval", str(root)],
            check=False, capture_output=True, text=True, timeout=60, cwd=scratch,
            env={**os.environ, "NO_COLOR": "1", "SUPERVISOR_RULES": str(root / "rules")},
        )
    finally:
        for directory in [scratch, *scratch.rglob("*")]:
            if directory.is_dir():
                directory.chmod(0o755)
        shutil.rmtree(scratch, ignore_errors=True)
    assert "Traceback" not in result.stderr, result.stderr[-800:]
    assert result.returncode == 2, (result.returncode, result.stderr[-800:])
    assert unreadable.split("/")[-1] in result.stderr


# ---------------------------------------------------------------------------------------------
# A FIFO where a record should be: opening it for reading waits for a writer that never comes.
# The fuzzer's tree damage found this (a named pipe as world/services/<node>/<service>.json).

FIFO_PLACES = ["world/world.json", "world/nodes/n1.json", "world/services/n1/web.json",
               "world/deployments/d1.json", "hosts/n1/services.yaml", "world.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
@pytest.mark.parametrize("place", FIFO_PLACES)
def test_fifo_instead_of_a_file_is_reported_not_waited_on(tmp_path: Path, place: str) -> None:
    root = _base_scenario(tmp_path / "scenario")
    fifo = root / place
    if fifo.exists():
        fifo.unlink()
    fifo.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(fifo)
    world = fifo if place == "world.json" else root / "world"
    errors: list[SupervisorError] = []

    def action() -> None:
        try:
            _eval_everything(root / "hosts", world)
        except SupervisorError as error:
            errors.append(error)
            raise

    found = outcome(action, CORPUS_TIMEOUT)
    assert found is None, f"FIFO at {place}: {found}"
    assert errors, f"FIFO at {place} was read as if it were a record"
    assert any(fifo.name in problem.file for problem in errors[0].problems), str(errors[0])


# ---------------------------------------------------------------------------------------------
# Deep values from the world, rendered by an innocent rule. A record may nest up to the JSON
# loader's limit (about 975 levels); a reason that prints such a value must not recurse past
# the interpreter's limit (engine._as_text did, from about 450 levels of lists).


@pytest.mark.parametrize("depth", [600])
def test_deep_world_value_in_a_reason_is_not_a_crash(tmp_path: Path, depth: int) -> None:
    root = _base_scenario(tmp_path / "scenario")
    record = root / "world" / "services" / "n1" / "web.json"
    record.write_text('{"status": "ok", "extra": ' + "[" * depth + "1" + "]" * depth + "}")
    (root / "rules").mkdir()
    (root / "rules" / "show.yaml").write_text(
        "rules:\n  - id: show-extra\n    condition: unhealthy_service\n"
        "    match: 'service.actual.extra'\n    event: reconcile_recommended\n"
        "    action: look\n    reason: '{{ service.actual.extra }}'\n")
    found = outcome(lambda: _eval_everything(root / "hosts", root / "world", (root / "rules",)),
                    CORPUS_TIMEOUT * 5)
    assert found is None, f"{found}"


def test_max_age_nan_is_refused_not_a_world_that_is_never_stale(tmp_path: Path) -> None:
    """`--max-age nan` compares false with every age: the world would never be stale."""
    root = _base_scenario(tmp_path / "scenario")
    with pytest.raises(SupervisorError, match="max-age"):
        load(Inputs(inventory=root / "hosts", world=root / "world", max_age=float("nan"),
                    now="2026-11-26T11:00:00Z"))
