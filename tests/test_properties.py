"""Property tests: valid inventories and worlds, generated, must evaluate deterministically.

The generators build valid input by construction (names match the name pattern, dependencies
point at declared services and form no cycle, timestamps are RFC 3339 with a zone), check it
against the JSON Schemas in `schemas/` as an oracle, and write it in several equivalent
layouts. The properties:

- every valid input evaluates without an exception;
- the same input gives the same `eval --format json` bytes, whatever the directory it sits in,
  the order keys are written in, the YAML style, and whether the world is a directory of
  records or one JSON or YAML file with its lists in any order;
- `explain` on every subject gives exactly the recommendations `eval` gives for that subject;
- the loaders give back what PyYAML and `json` wrote.

Bounded for CI: `SUPERVISOR_FUZZ_EXAMPLES` (default 30) examples per property, derandomized so
that a run is reproducible; `SUPERVISOR_FUZZ_RANDOM=1` draws fresh examples, and
`SUPERVISOR_FUZZ_SHRINK=1` shrinks a failure to a minimal example. See docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from support.scenarios import ROOT, evaluate_dir

from supervisor.engine import evaluate
from supervisor.errors import SupervisorError
from supervisor.explain import explain
from supervisor.inputs import Inputs, load
from supervisor.loader import load_json, load_yaml
from supervisor.report import render_explanation, render_table, to_json
from supervisor.timestamps import is_time

EXAMPLES = int(os.environ.get("SUPERVISOR_FUZZ_EXAMPLES", "30"))
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    derandomize=os.environ.get("SUPERVISOR_FUZZ_RANDOM") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
    print_blob=True,
    # Shrinking a failure to its smallest form can take half a minute; CI only needs to know
    # that it failed (the failing example is reproducible: the runs are derandomized).
    phases=[phase for phase in Phase
            if phase is not Phase.shrink or os.environ.get("SUPERVISOR_FUZZ_SHRINK") == "1"],
)

SERVICE_STATUSES = ["ok", "degraded", "failed", "stopped", "starting", "unknown"]
NODE_STATUSES = ["online", "offline", "unknown"]

# ---------------------------------------------------------------------------------------------
# Schema oracle: whatever the generators make must be valid by the project's own schemas.

_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time")(is_time)


def _validator(name: str, definition: str | None = None) -> Draft202012Validator:
    schema = json.loads((ROOT / "schemas" / f"{name}.schema.json").read_text())
    if definition is not None:
        schema = {"$ref": f"#/$defs/{definition}", "$defs": schema["$defs"]}
    return Draft202012Validator(schema, format_checker=_FORMATS)


INVENTORY_SCHEMA = _validator("inventory")
WORLD_SCHEMA = _validator("world")

# ---------------------------------------------------------------------------------------------
# Strategies.

short_names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,8}", fullmatch=True)
long_names = st.from_regex(r"[a-z0-9][a-z0-9_.-]{62}", fullmatch=True)
names = st.one_of(short_names, short_names, short_names, long_names)

# Text without surrogates (which no UTF-8 file can hold) and without NUL; everything else,
# control characters and astral planes included, except the YAML 1.1 line breaks NEL, LS and PS:
# PyYAML's emitter (not our loader) writes them unescaped into single-quoted scalars with
# `allow_unicode=True`, where they read back as spaces (`safe_dump({"a": "!\x85"},
# allow_unicode=True)` gives `a: '!\x85  '`, which any YAML parser reads as "! ").
texts = st.text(st.characters(exclude_categories=("Cs",),
                              exclude_characters="\x00\x85\u2028\u2029"), max_size=12)
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False), texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
labels = st.dictionaries(texts, texts, max_size=3)
x_keys = st.builds(lambda tail: "x-" + tail, texts)
ZONES = [UTC, UTC, UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)),
         timezone(timedelta(hours=23, minutes=59)), timezone(-timedelta(hours=23, minutes=59))]


@st.composite
def timestamps(draw: Any, base: datetime, earliest: int, latest: int) -> str:
    """An RFC 3339 text for a moment `earliest`..`latest` seconds after `base`, in any zone."""
    seconds = draw(st.integers(earliest, latest))
    micro = draw(st.sampled_from([0, 0, 0, 1, 500_000, 999_999]))
    zone = draw(st.sampled_from(ZONES))
    try:
        moment = (base + timedelta(seconds=seconds, microseconds=micro)).astimezone(zone)
    except OverflowError:  # near year 1 or 9999: stay at the base moment
        moment = base
    return rfc3339(moment, draw(st.sampled_from(["T", "T", "t", " "])),
                   draw(st.sampled_from(["Z", "Z", "z", "+00:00"])))


def rfc3339(moment: datetime, separator: str = "T", utc: str = "Z") -> str:
    text = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}{separator}" \
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    offset = moment.utcoffset() or timedelta(0)
    if not offset:
        return text + utc
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _extras(draw: Any, reserved: set[str]) -> dict[str, Any]:
    """Fields an observer may add: kept and visible to rules."""
    extra = draw(st.dictionaries(texts.filter(lambda key: key not in reserved), json_values,
                                 max_size=2))
    return extra


def _maybe(draw: Any, probability: float = 0.5) -> bool:
    return draw(st.floats(0, 1)) < probability


@st.composite
def homelabs(draw: Any, moments: Any = None) -> dict[str, Any]:
    """A valid inventory and world: `{"hosts": {node: document}, "world": document, "now"}`."""
    if moments is None:
        moments = st.datetimes(datetime(2000, 1, 2), datetime(2100, 1, 1),
                                      timezones=st.sampled_from(ZONES))
    observed = draw(moments)
    observed_at = rfc3339(observed, "T", draw(st.sampled_from(["Z", "z", "+00:00"])))

    node_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    declared: dict[str, list[str]] = {
        node: draw(st.lists(names, max_size=4, unique=True)) for node in node_names}
    service_ids = [f"{node}/{name}" for node, services in declared.items() for name in services]

    # Dependencies only point backwards in a random order of the services: no cycle.
    order = draw(st.permutations(service_ids))
    depends: dict[str, list[str]] = {}
    for position, service_id in enumerate(order):
        targets = draw(st.lists(st.sampled_from(order[:position]), max_size=3, unique=True)) \
            if position else []
        node = service_id.split("/")[0]
        depends[service_id] = [
            target.split("/")[1] if target.startswith(node + "/") and _maybe(draw, 0.7)
            else target
            for target in targets
        ]

    hosts: dict[str, Any] = {}
    for node, services in declared.items():
        document: dict[str, Any] = {}
        if _maybe(draw):
            node_spec: dict[str, Any] = {}
            if _maybe(draw):
                node_spec["critical"] = draw(st.booleans())
            if _maybe(draw, 0.3):
                node_spec["labels"] = draw(labels)
            for key in draw(st.lists(x_keys, max_size=2, unique=True)):
                node_spec[key] = draw(json_values)
            document["node"] = node_spec
        if not services:
            document["services"] = draw(st.sampled_from([None, {}]))
        else:
            document["services"] = {}
            for name in services:
                service_id = f"{node}/{name}"
                spec: dict[str, Any] | None = {}
                assert spec is not None
                if _maybe(draw, 0.3):
                    spec["critical"] = draw(st.booleans())
                if depends[service_id] or _maybe(draw, 0.1):
                    spec["depends_on"] = depends[service_id]
                for key in ("image", "version"):
                    if _maybe(draw, 0.3):
                        spec[key] = draw(texts)
                if _maybe(draw, 0.2):
                    spec["labels"] = draw(labels)
                for key in draw(st.lists(x_keys, max_size=2, unique=True)):
                    spec[key] = draw(json_values)
                if not spec and _maybe(draw):
                    spec = None
                document["services"][name] = spec
        for key in draw(st.lists(x_keys, max_size=1, unique=True)):
            document[key] = draw(json_values)
        hosts[node] = document

    def when(earliest: int, latest: int) -> str:
        return draw(timestamps(observed, earliest, latest))

    world: dict[str, Any] = {"observed_at": observed_at}
    if _maybe(draw, 0.8):
        observer: dict[str, Any] = {}
        for key in ("name", "version"):
            if _maybe(draw, 0.8):
                observer[key] = draw(texts)
        observer.update(_extras(draw, {"name", "version"}))
        world["observer"] = observer

    extra_nodes = draw(st.lists(names.filter(lambda n: n not in declared), max_size=2,
                                unique=True))
    nodes: dict[str, Any] = {}
    for node in [*node_names, *extra_nodes]:
        if _maybe(draw, 0.8):
            nodes[node] = {
                "status": draw(st.sampled_from(NODE_STATUSES)),
                "last_seen": when(-900, 60),
                **_extras(draw, {"status", "last_seen"}),
            }
    world["nodes"] = nodes

    unmanaged = [
        f"{draw(st.sampled_from([*node_names, *extra_nodes]))}/{draw(names)}"
        for _ in range(draw(st.integers(0, 2)))
    ]
    services: dict[str, Any] = {}
    for service_id in [*service_ids, *unmanaged]:
        if service_id in services or not _maybe(draw, 0.75):
            continue
        record: dict[str, Any] = {"status": draw(st.sampled_from(SERVICE_STATUSES))}
        if _maybe(draw, 0.7):
            record["since"] = when(-86400, 0)
        if _maybe(draw):
            record["version"] = draw(texts)
        record.update(_extras(draw, {"status", "since", "version"}))
        services[service_id] = record
    world["services"] = services

    known_services = sorted({*service_ids, *unmanaged}) or [f"{node_names[0]}/orphan"]
    ids = draw(st.lists(names, max_size=10, unique=True))
    split = draw(st.integers(0, len(ids)))
    deployments = []
    for deployment_id in ids[:split]:
        status = draw(st.sampled_from(["succeeded", "failed", "failed", "running"]))
        started = draw(st.integers(-3 * 86400, 120))
        deployment: dict[str, Any] = {
            "id": deployment_id,
            "service": draw(st.sampled_from(known_services)),
            "status": status,
            "started_at": when(started, started),
        }
        if status != "running":
            finished = started + draw(st.integers(0, 3600))
            deployment["finished_at"] = when(finished, finished)
        deployment.update(_extras(draw, set(deployment) | {"finished_at"}))
        deployments.append(deployment)
    incidents = []
    subjects = [*known_services, *node_names, *extra_nodes]
    for incident_id in ids[split:]:
        incident: dict[str, Any] = {
            "id": incident_id,
            "subject": draw(st.sampled_from(subjects)),
            "status": draw(st.sampled_from(["open", "acknowledged", "resolved"])),
            "severity": draw(st.sampled_from(["info", "warning", "critical"])),
            "opened_at": when(-7 * 86400, 0),
        }
        if _maybe(draw):
            incident["title"] = draw(texts)
        incident.update(_extras(draw, set(incident) | {"title"}))
        incidents.append(incident)
    world["deployments"] = deployments
    world["incidents"] = incidents

    # --now: usually the snapshot's own time; sometimes later, so that the world is stale.
    now = None
    if _maybe(draw, 0.2):
        now = draw(timestamps(observed, 0, 7200))
    return {"hosts": hosts, "world": world, "now": now}


def assert_schema_valid(model: dict[str, Any]) -> None:
    for node, document in model["hosts"].items():
        errors = [error.message for error in INVENTORY_SCHEMA.iter_errors(document)]
        assert not errors, (node, errors)
    errors = [error.message for error in WORLD_SCHEMA.iter_errors(model["world"])]
    assert not errors, errors


# ---------------------------------------------------------------------------------------------
# Writing one model in several equivalent layouts.


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same value with every mapping's keys in a random order (lists keep their order)."""
    if isinstance(value, dict):
        keys = list(value)
        rng.shuffle(keys)
        return {key: shuffled(value[key], rng) for key in keys}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


def dump_yaml(value: Any, rng: random.Random) -> str:
    return yaml.safe_dump(
        value, sort_keys=False, allow_unicode=rng.random() < 0.5,
        default_flow_style=rng.choice([False, None, True]), width=rng.choice([40, 80, 10**6]),
    )


def dump_json(value: Any, rng: random.Random) -> str:
    return json.dumps(value, indent=rng.choice([None, 1, 2]), ensure_ascii=rng.random() < 0.5)


def write_layout(root: Path, model: dict[str, Any], rng: random.Random, layout: str) -> Path:
    """Writes hosts/ and the world (`dir`, `json` or `yaml`); returns the world's path."""
    nodes = list(model["hosts"])
    rng.shuffle(nodes)  # creation order must not matter
    for node in nodes:
        (root / "hosts" / node).mkdir(parents=True)
        (root / "hosts" / node / "services.yaml").write_text(
            dump_yaml(shuffled(model["hosts"][node], rng), rng), encoding="utf-8")
    world = model["world"]
    if layout in ("json", "yaml"):
        document = shuffled(world, rng)
        for key in ("deployments", "incidents"):
            rng.shuffle(document[key])
        path = root / f"world.{layout}"
        text = dump_json(document, rng) if layout == "json" else dump_yaml(document, rng)
        path.write_text(text, encoding="utf-8")
        return path
    base = root / "world"
    base.mkdir()
    meta = {key: world[key] for key in ("observed_at", "observer") if key in world}
    (base / "world.json").write_text(dump_json(shuffled(meta, rng), rng), encoding="utf-8")
    files: list[tuple[Path, Any]] = []
    for name, record in world["nodes"].items():
        files.append((base / "nodes" / f"{name}.json", record))
    for service_id, record in world["services"].items():
        node, name = service_id.split("/")
        files.append((base / "services" / node / f"{name}.json", record))
    for kind in ("deployments", "incidents"):
        for record in world[kind]:
            files.append((base / kind / f"{record['id']}.json", record))
    rng.shuffle(files)
    for path, record in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_json(shuffled(record, rng), rng), encoding="utf-8")
    return base


def eval_bytes(root: Path, world: Path, now: str | None) -> bytes:
    evaluation = evaluate_dir(root, world=world, now=now)
    table = render_table(evaluation)
    table.encode("utf-8")  # what the CLI writes to stdout must be encodable
    return to_json(evaluation.to_json()).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Properties.


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(model=homelabs(), seed=st.integers(0, 2**32 - 1))
def test_eval_is_deterministic_and_independent_of_layout_and_key_order(
    model: dict[str, Any], seed: int
) -> None:
    assert_schema_valid(model)
    rng = random.Random(seed)
    outputs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for index, layout in enumerate(["dir", "dir", "json", "yaml"]):
            root = Path(scratch) / f"variant{index}"
            world = write_layout(root, model, random.Random(rng.random()), layout)
            outputs[f"{layout}{index}"] = eval_bytes(root, world, model["now"])
            if index == 0:
                # The same files evaluated again.
                outputs["dir0-again"] = eval_bytes(root, world, model["now"])
    first = outputs["dir0"]
    for variant, output in outputs.items():
        assert output == first, f"{variant} differs from dir0"
    document = json.loads(first)
    assert document["summary"] in ("nominal", "degraded", "unstable", "reconciling")
    ids = [(r["subject"]["id"]) for r in document["recommendations"]]
    assert ids == sorted(ids)


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(model=homelabs(), seed=st.integers(0, 2**32 - 1))
def test_the_fast_evaluation_equals_the_reference_interpreter(
    model: dict[str, Any], seed: int
) -> None:
    """The batch and the compiled closures (supervisor/batch.py, compiler.py) against jmespath's
    own interpreter, on random homelabs: the same JSON, valid until the same moment."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = write_layout(root, model, random.Random(seed), "dir")
        loaded = load(Inputs(inventory=root / "hosts", world=world, now=model["now"]))
    fast = evaluate(loaded.state, loaded.rules)
    slow = evaluate(loaded.state, loaded.rules, reference=True)
    assert to_json(fast.to_json()) == to_json(slow.to_json())
    assert fast.valid_until == slow.valid_until


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(model=homelabs(), seed=st.integers(0, 2**32 - 1))
def test_explain_gives_exactly_eval_recommendations_for_every_subject(
    model: dict[str, Any], seed: int
) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = write_layout(root, model, random.Random(seed), "dir")
        loaded = load(Inputs(inventory=root / "hosts", world=world, now=model["now"]))
    state, rules = loaded.state, loaded.rules
    evaluation = evaluate(state, rules)
    everyone = [subject for subjects in state.subjects.values() for subject in subjects]
    assert {r.subject for r in evaluation.recommendations} <= set(everyone)
    for subject in everyone:
        traced = evaluate(state, rules, trace={subject})
        assert [r.to_json() for r in traced.recommendations] == \
            [r.to_json() for r in evaluation.recommendations]
        explanation = explain(state, rules, traced, subject)
        expected = [r.to_json() for r in evaluation.recommendations if r.subject == subject]
        assert [r.to_json() for r in explanation.recommendations] == expected, subject
        # One trace entry per rule of the subject's kind, in order; "fired" exactly for the
        # rules whose recommendation survived.
        assert [step.rule.id for step in explanation.trace] == \
            [rule.id for rule in rules.rules if rule.kind == subject.kind]
        fired = [step.rule.id for step in explanation.trace if step.outcome.outcome == "fired"]
        assert fired == [r["rule"] for r in expected]
        # Both renderings work and can be written out.
        to_json(explanation.to_json()).encode("utf-8")
        render_explanation(explanation).encode("utf-8")


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(
    model=homelabs(moments=st.datetimes(
        datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59), timezones=st.sampled_from(ZONES))),
    seed=st.integers(0, 2**32 - 1),
)
def test_valid_input_with_any_representable_timestamp_evaluates(
    model: dict[str, Any], seed: int
) -> None:
    """Any timestamp the schema accepts, however far from today, evaluates; one it refuses
    (years 0001 and 9999 pushed out of range by their offset, say) is a SupervisorError."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        world = write_layout(root, model, random.Random(seed), "dir")
        check_outcome(model, root, world)


def schema_problems(model: dict[str, Any]) -> list[str]:
    found = [error.message for document in model["hosts"].values()
             for error in INVENTORY_SCHEMA.iter_errors(document)]
    return found + [error.message for error in WORLD_SCHEMA.iter_errors(model["world"])]


def check_outcome(model: dict[str, Any], root: Path, world: Path) -> None:
    """Valid by the schemas (whose date-time check is the supervisor's own): evaluates, with
    an RFC 3339 `evaluated_at`. Invalid: a SupervisorError, nothing else."""
    if schema_problems(model):
        with pytest.raises(SupervisorError):
            eval_bytes(root, world, model["now"])
        return
    document = json.loads(eval_bytes(root, world, model["now"]))
    assert is_time(document["evaluated_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", document["evaluated_at"])


def _minimal_world(observed_at: str) -> dict[str, Any]:
    return {
        "hosts": {"n1": {"services": {"web": None}}},
        "world": {"observed_at": observed_at, "nodes": {}, "services": {},
                  "deployments": [], "incidents": []},
        "now": None,
    }


@pytest.mark.parametrize("observed_at", [
    "9999-12-31T23:59:59Z",          # was: OverflowError (date value out of range)
    "9999-12-31T23:00:00-05:00",     # was: OverflowError, via the offset
    "0001-01-01T00:30:00+01:00",     # was: OverflowError, below year 1
    "0999-06-01T00:00:00Z",          # was: formatted "999-06-01...", which no rule could parse
    "0001-01-01T00:00:00Z",
])
def test_extreme_observed_at_evaluates_or_is_refused(tmp_path: Path, observed_at: str) -> None:
    model = _minimal_world(observed_at)
    world = write_layout(tmp_path, model, random.Random(0), "dir")
    check_outcome(model, tmp_path, world)


# JSON-like values for the loader round trip: string keys, finite numbers, no surrogates.
@PROPERTY_SETTINGS
@given(value=st.dictionaries(texts, json_values, max_size=4), seed=st.integers(0, 2**32 - 1))
@example(value={"a": "2026-11-26T10:00:00Z", "<<": "x", "=": "y", "yes": "on", "": None},
         seed=0)
def test_loaders_read_back_what_yaml_and_json_wrote(value: dict[str, Any], seed: int) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as scratch:
        yaml_path = Path(scratch) / "value.yaml"
        yaml_path.write_text(dump_yaml(value, rng), encoding="utf-8")
        json_path = Path(scratch) / "value.json"
        json_path.write_text(dump_json(value, rng), encoding="utf-8")
        assert load_yaml(yaml_path).value == value
        assert load_json(json_path) == value


def test_deployment_order_in_a_single_file_world_does_not_matter_with_duplicate_ids(
    tmp_path: Path,
) -> None:
    """Two deployments with one id and the same times, one failed and one succeeded: the
    answer must not depend on which the observer listed first (an error is fine too)."""
    failed = {"id": "d1", "service": "n1/web", "status": "failed",
              "started_at": "2026-11-26T09:00:00Z", "finished_at": "2026-11-26T09:05:00Z"}
    succeeded = {**failed, "status": "succeeded"}
    (tmp_path / "hosts" / "n1").mkdir(parents=True)
    (tmp_path / "hosts" / "n1" / "services.yaml").write_text("services:\n  web: {}\n")
    outputs = []
    for index, deployments in enumerate([[failed, succeeded], [succeeded, failed]]):
        world = tmp_path / f"world{index}.json"
        world.write_text(json.dumps({
            "observed_at": "2026-11-26T10:00:00Z",
            "nodes": {"n1": {"status": "online", "last_seen": "2026-11-26T09:59:00Z"}},
            "services": {"n1/web": {"status": "ok"}},
            "deployments": deployments,
        }))
        try:
            outputs.append(eval_bytes(tmp_path, world, None).decode())
        except SupervisorError as error:
            outputs.append(f"error: {error}".replace(world.name, "world.json"))
    assert outputs[0] == outputs[1]
