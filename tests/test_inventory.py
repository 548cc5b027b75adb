from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.errors import InputError
from supervisor.inventory import load_inventory


def hosts(tmp_path: Path, files: dict[str, str]) -> Path:
    for node, text in files.items():
        (tmp_path / "hosts" / node).mkdir(parents=True)
        (tmp_path / "hosts" / node / "services.yaml").write_text(text)
    return tmp_path / "hosts"


def problems(root: Path) -> list[str]:
    with pytest.raises(InputError) as caught:
        load_inventory(root)
    return [str(p) for p in caught.value.problems]


def test_services_get_ids_defaults_and_qualified_dependencies(tmp_path: Path) -> None:
    root = hosts(tmp_path, {
        "nas01": "node: {critical: true}\nservices:\n  db:\n  app:\n"
                 "    depends_on: [db, infra01/redis]\n    x-owner: alice\n",
        "infra01": "services:\n  redis: {}\n",
    })
    inventory = load_inventory(root)
    assert list(inventory.services) == ["infra01/redis", "nas01/db", "nas01/app"]
    app = inventory.services["nas01/app"]
    assert app.depends_on == ("nas01/db", "infra01/redis")
    assert app.desired == {"critical": False, "one_shot": False,
                           "depends_on": ["nas01/db", "infra01/redis"], "image": None, "version": None, "labels": {}, "x-owner": "alice"}
    assert inventory.nodes["nas01"].critical
    assert inventory.nodes["nas01"].services == ("nas01/db", "nas01/app")


def test_unknown_dependency_names_file_line_and_target(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"n1": "services:\n  web:\n    depends_on: [db]\n"})
    assert problems(root) == [
        (f"{root}/n1/services.yaml:3:18: services.web.depends_on[0]: "
        "depends on n1/db, which no node declares")
    ]


def test_cycle_is_named_once(tmp_path: Path) -> None:
    root = hosts(tmp_path, {
        "n1": "services:\n  a: {depends_on: [b]}\n  b: {depends_on: [n2/c]}\n",
        "n2": "services:\n  c: {depends_on: [n1/a]}\n",
    })
    (problem,) = problems(root)
    assert problem.endswith("dependency cycle: n1/a -> n1/b -> n2/c -> n1/a")
    assert problem.startswith(f"{root}/n1/services.yaml:2:")


def test_self_dependency(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"n1": "services:\n  a: {depends_on: [a]}\n"})
    assert problems(root)[0].endswith("n1/a depends on itself")


def test_long_dependency_chain_is_fine(tmp_path: Path) -> None:
    lines = ["services:", "  s0: {}"] + [f"  s{i}: {{depends_on: [s{i - 1}]}}" for i in range(1, 3000)]
    root = hosts(tmp_path, {"n1": "\n".join(lines) + "\n"})
    assert len(load_inventory(root).services) == 3000


def test_problems_from_every_node_are_reported(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"n1": "services:\n  a: {critical: 1}\n", "n2": "services: [x]\n",
                            "n3": ""})
    found = problems(root)
    assert len(found) == 3
    assert any("n3/services.yaml:1:1: is empty" in p for p in found)


def test_missing_inventory(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope") == [f"{tmp_path / 'nope'}: inventory directory does not exist"]


def test_node_directory_without_services_file(tmp_path: Path) -> None:
    (tmp_path / "hosts" / "n1").mkdir(parents=True)
    assert problems(tmp_path / "hosts") == [f"{tmp_path}/hosts/n1/services.yaml: does not exist"]


def test_invalid_node_directory_name(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"Bad_Node": "services: {}\n"})
    assert "node name 'Bad_Node' is not valid" in problems(root)[0]


def test_empty_inventory(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    assert "holds no nodes" in problems(tmp_path / "hosts")[0]


def test_hidden_directories_are_ignored(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"n1": "services: {}\n"})
    (root / ".git").mkdir()
    assert list(load_inventory(root).nodes) == ["n1"]


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    import os

    root = hosts(tmp_path, {"n1": "services: {}\n"})
    secret = tmp_path / "secret.yaml"
    secret.write_text("services: {}\npassword: hunter2\n")
    (root / "n2").mkdir()
    os.symlink(secret, root / "n2" / "services.yaml")
    os.symlink(tmp_path / "elsewhere", root / "n3")
    found = problems(root)
    assert found == [
        (f"{root}/n2/services.yaml: is a symlink; links inside the inventory and the world "
        "are not followed"),
        f"{root}/n3: is a symlink; links inside the inventory and the world are not followed",
    ]
    assert not any("hunter2" in problem or "password" in problem for problem in found)


def test_a_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    root = hosts(tmp_path, {"n1": "- web\n- db\n"})
    assert problems(root) == [
        f"{root}/n1/services.yaml:1:1: must be a mapping with a 'services' key"]


def test_one_shot_is_declared_per_service(tmp_path: Path) -> None:
    (tmp_path / "nas01").mkdir()
    (tmp_path / "nas01" / "services.yaml").write_text(
        "services:\n  migrate: {one_shot: true}\n  web:\n")
    inventory = load_inventory(tmp_path)
    assert inventory.services["nas01/migrate"].desired["one_shot"] is True
    assert inventory.services["nas01/web"].desired["one_shot"] is False
