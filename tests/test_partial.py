"""A run that takes up the last run's evaluation (memo.py) loads only the nodes the changed
records touch, and still writes what a full evaluation would, byte for byte."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from support.scenarios import ROOT
from test_incremental import RULES, changing_copy, full, rewrite, run_alone_loading, unfrozen

from supervisor import incremental
from supervisor.incremental import Incremental
from supervisor.inventory import load_inventory

__all__ = ["unfrozen"]  # the fixture, used by every test here

NODES = 12


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lab = tmp_path_factory.mktemp("generated") / "lab"
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate.py"), str(lab), "--nodes",
                    str(NODES), "--services", "6"], check=True, stdout=subprocess.DEVNULL)
    (lab / "rules").mkdir()
    (lab / "rules" / "extra.yaml").write_text(RULES)
    return lab


def observe(rng: random.Random, lab: Path) -> set[str]:
    """An observer rewrites a service's or a node's record; the subjects' ids."""
    world = lab / "world"
    if rng.random() < 0.25:
        path = rng.choice(sorted((world / "nodes").glob("*.json")))
        record = json.loads(path.read_text())
        record["status"] = "online" if record["status"] == "offline" else "offline"
        subject = path.stem
    else:
        path = rng.choice(sorted((world / "services").glob("*/*.json")))
        record = json.loads(path.read_text())
        record["status"] = rng.choice(sorted({"ok", "failed", "degraded", "stopped"}
                                             - {record["status"]}))
        subject = f"{path.parent.name}/{path.stem}"
    rewrite(path, json.dumps(record))
    return {subject}


def needed(lab: Path, subjects: set[str]) -> set[str]:
    """The nodes a change of these subjects' records touches, from the whole inventory: each
    subject's node, the services on a node, the services depending on those, and the nodes of
    all of their dependencies."""
    inventory = load_inventory(lab / "hosts")
    services = {subject for subject in subjects if "/" in subject}
    services |= {service for service in inventory.services
                 if service.split("/")[0] in subjects}
    services |= {service.id for service in inventory.services.values()
                 if services & set(service.depends_on)}
    nodes = {subject.split("/")[0] for subject in subjects | services}
    for service in services & inventory.services.keys():
        nodes |= {dependency.split("/")[0] for dependency in inventory.services[service].depends_on}
    return nodes


@pytest.mark.parametrize("seed", range(4))
def test_a_run_loads_only_the_nodes_the_changed_records_touch(
        seed: int, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, inputs, now = changing_copy(generated, tmp_path, monkeypatch)
    rng = random.Random(seed)
    run_alone_loading(inputs, now)
    for _ in range(10):
        subjects = observe(rng, lab)
        found, resumed, part = run_alone_loading(inputs, now)
        assert found == full(inputs, now, monkeypatch), subjects
        assert resumed and part is not None
        assert part == needed(lab, subjects) and len(part) < NODES, subjects


def test_a_part_that_misses_what_a_change_touches_is_not_used(
        generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lab, inputs, now = changing_copy(generated, tmp_path, monkeypatch)
    # Only the changed records' own nodes: not their dependants' or dependencies'.
    monkeypatch.setattr(Incremental, "touched", staticmethod(
        lambda inputs, earlier, changed, now: {Path(path).parent.name if "services" in path
                                               else Path(path).stem for path in changed}))
    refused = []
    covered = incremental._covered

    def counted(*args: object) -> bool:
        refused.append(not covered(*args))  # type: ignore[arg-type]
        return not refused[-1]

    monkeypatch.setattr(incremental, "_covered", counted)
    rng = random.Random(7)
    run_alone_loading(inputs, now)
    for _ in range(12):
        subjects = observe(rng, lab)
        found, resumed, part = run_alone_loading(inputs, now)
        assert found == full(inputs, now, monkeypatch), subjects
        assert resumed  # taken up all the same, with everything loaded where a part fell short
        assert (part is None) == refused[-1]
    assert any(refused) and not all(refused)

