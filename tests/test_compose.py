"""`supervisor import compose`: the inventory from per-node Compose folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.compose import import_compose, render_node
from supervisor.inventory import load_inventory

runner = CliRunner()


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


NEXTCLOUD = """\
services:
  nextcloud:
    image: nextcloud:${NC_VERSION:-29}
    depends_on:
      db:
        condition: service_healthy
    labels:
      traefik.enable: "true"
      tier: app
    x-homelab:
      critical: true
      depends_on: [pi4/redis]
  db:
    image: postgres:16
    labels: [homelab.service=nextcloud-db, "backup"]
    environment:
      POSTGRES_PASSWORD: ${NOT_READ_SO_NOT_NEEDED}
  migrate:
    image: nextcloud:${NC_VERSION:-29}
    depends_on: [db]
    x-homelab: {one_shot: true}
  devtools:
    image: busybox
    x-homelab: {skip: true}
"""
REDIS = "services:\n  redis:\n    image: redis@sha256:abc\n"


def homelab(root: Path) -> Path:
    return tree(root / "compose", {"nas01/nextcloud/compose.yaml": NEXTCLOUD,
                                   "pi4/infra/compose.yml": REDIS,
                                   "pi4/configs/mosquitto.conf": "listener 1883\n"})


def test_services_are_mapped_as_the_observer_will_name_them(tmp_path: Path) -> None:
    nodes = import_compose(homelab(tmp_path), environment={})
    assert render_node(nodes["nas01"]) == """\
# Written by `supervisor import compose` from:
#   nas01/nextcloud/compose.yaml
# Edit those (an x-homelab mapping on a service says what Compose cannot) and import
# again: changes made here are overwritten.
services:
  migrate:
    one_shot: true
    depends_on:
    - nextcloud-db
    image: nextcloud:29
    version: '29'
  nextcloud:
    critical: true
    depends_on:
    - nextcloud-db
    - pi4/redis
    image: nextcloud:29
    version: '29'
    labels:
      tier: app
      traefik.enable: 'true'
  nextcloud-db:
    image: postgres:16
    version: '16'
    labels:
      backup: ''
      homelab.service: nextcloud-db
"""
    assert render_node(nodes["pi4"]).endswith("services:\n  redis:\n    image: redis@sha256:abc\n")


def test_the_written_inventory_loads(tmp_path: Path) -> None:
    result = runner.invoke(app, ["import", "compose", str(homelab(tmp_path)),
                                 "--out", str(tmp_path / "hosts")])
    assert result.exit_code == 0, result.output
    assert result.output == (f"{tmp_path}/hosts/nas01/services.yaml: 3 services written\n"
                             f"{tmp_path}/hosts/pi4/services.yaml: 1 service written\n")
    inventory = load_inventory(tmp_path / "hosts")
    assert sorted(inventory.services) == ["nas01/migrate", "nas01/nextcloud",
                                          "nas01/nextcloud-db", "pi4/redis"]
    assert inventory.services["nas01/migrate"].desired["one_shot"] is True
    again = runner.invoke(app, ["import", "compose", str(tmp_path / "compose"),
                                "--out", str(tmp_path / "hosts")])
    assert again.output.count(": unchanged") == 2


def test_environment_wins_over_dotenv_and_dotenv_over_defaults(tmp_path: Path) -> None:
    root = tree(tmp_path, {"n/s/compose.yaml": "services:\n  a:\n    image: a:${V:-0}\n",
                           "n/s/.env": "V=1\n"})
    assert import_compose(root, {})["n"]["a"].spec["version"] == "1"
    assert import_compose(root, {"V": "2"})["n"]["a"].spec["version"] == "2"
    (tmp_path / "n/s/.env").unlink()
    assert import_compose(root, {})["n"]["a"].spec["version"] == "0"


def test_compose_yaml_is_preferred_as_compose_does(tmp_path: Path) -> None:
    root = tree(tmp_path, {"n/s/docker-compose.yml": "services:\n  old: {}\n",
                           "n/s/compose.yaml": "services:\n  new: {}\n",
                           "n/.hidden/compose.yaml": "services:\n  hidden: {}\n"})
    assert list(import_compose(root, {})["n"]) == ["new"]


def problems_of(root: Path) -> str:
    result = runner.invoke(app, ["import", "compose", str(root), "--out", str(root / "hosts")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert not (root / "hosts").exists()  # nothing written when anything is wrong
    return result.output


def test_an_unresolved_variable_names_file_line_and_variable(tmp_path: Path) -> None:
    root = tree(tmp_path, {"nas01/immich/compose.yaml":
                           "services:\n  server:\n    image: immich:${IMMICH_VERSION}\n"})
    assert problems_of(root).startswith(
        f"{tmp_path}/nas01/immich/compose.yaml:3:12: services.server.image: variable "
        "IMMICH_VERSION is not set (define it in the .env file beside the Compose file or in "
        "the environment, or give a default: ${IMMICH_VERSION:-...})\n")


def test_a_bad_dotenv_line_is_named(tmp_path: Path) -> None:
    root = tree(tmp_path, {"n/s/compose.yaml": "services:\n  a: {}\n", "n/s/.env": "A=1\noops\n"})
    assert f"{tmp_path}/n/s/.env:2: expected KEY=VALUE, found 'oops'" in problems_of(root)


def test_two_stacks_defining_one_service_name_on_a_node(tmp_path: Path) -> None:
    root = tree(tmp_path, {"nas01/immich/compose.yaml": "services:\n  db: {}\n",
                           "nas01/nextcloud/compose.yaml": "services:\n  app: {}\n  db: {}\n"})
    assert problems_of(root) == (
        f"{tmp_path}/nas01/nextcloud/compose.yaml:3:3: services.db: node nas01 already has a "
        f"service 'db', from {tmp_path}/nas01/immich/compose.yaml:2:3; give one of them a "
        "'homelab.service' label naming it apart (labels: {homelab.service: "
        "<stack>-<service>}), which observe docker uses too; see docs/observe.md\n"
        "supervisor: 1 problem found\n")
    # ...and the documented way out works:
    (tmp_path / "nas01/immich/compose.yaml").write_text(
        "services:\n  db:\n    labels: {homelab.service: immich-db}\n")
    assert sorted(import_compose(root, {})["nas01"]) == ["app", "db", "immich-db"]


@pytest.mark.parametrize(("compose", "message"), [
    ("services:\n  a:\n    x-homelab: {one-shot: true}\n",
     ("3:17: services.a.x-homelab.one-shot: unknown key 'one-shot' (known: critical, "
      "one_shot, depends_on, skip)")),
    ("services:\n  a:\n    x-homelab: {critical: yes please}\n",
     "services.a.x-homelab.critical: must be true or false"),
    ("services:\n  a:\n    x-homelab: {depends_on: [Other/Thing]}\n",
     "'Other/Thing' is not a service reference"),
    ("services:\n  a:\n    depends_on: [b]\n",
     "3:18: services.a.depends_on[0]: depends on 'b', which this Compose file does not define"),
    ("services:\n  a:\n    labels: 3\n", "services.a.labels: must be a mapping or a list"),
    ("services:\n  My App: {}\n", "2:3: services.My App: service name 'my app' is not a valid"),
    ("services:\n  a:\n    x-homelab: {depends_on: [ghost]}\n",
     "depends on n/ghost, which no Compose file of node n defines"),
    ("services: [a, b]\n", "must be a mapping with a 'services' mapping"),
    ("services:\n  a: {}\n  a: {}\n", "duplicate key"),
])
def test_bad_compose_files(tmp_path: Path, compose: str, message: str) -> None:
    assert message in problems_of(tree(tmp_path, {"n/s/compose.yaml": compose}))


def test_a_bad_node_folder_name_and_no_compose_files(tmp_path: Path) -> None:
    assert "node name 'NAS01' is not valid" in problems_of(
        tree(tmp_path / "a", {"NAS01/s/compose.yaml": "services: {}\n"}))
    assert "holds no Compose files" in problems_of(tree(tmp_path / "b", {"n/s/README": "x"}))


def test_check_writes_nothing_and_exits_1_on_a_difference(tmp_path: Path) -> None:
    root = homelab(tmp_path)
    hosts = tmp_path / "hosts"
    missing = runner.invoke(app, ["import", "compose", str(root), "--out", str(hosts), "--check"])
    assert missing.exit_code == 1
    assert f"--- /dev/null\n+++ {hosts}/nas01/services.yaml (from the Compose files)\n" in (
        missing.output)
    assert not hosts.exists()
    runner.invoke(app, ["import", "compose", str(root), "--out", str(hosts)])
    same = runner.invoke(app, ["import", "compose", str(root), "--out", str(hosts), "--check"])
    assert (same.exit_code, same.output) == (0, "2 nodes up to date\n")
    (tmp_path / "compose/pi4/infra/compose.yml").write_text("services:\n  redis:\n"
                                                             "    image: redis:7.4\n")
    before = (hosts / "pi4/services.yaml").read_text()
    changed = runner.invoke(app, ["import", "compose", str(root), "--out", str(hosts), "--check"])
    assert changed.exit_code == 1
    assert "-    image: redis@sha256:abc\n+    image: redis:7.4\n+    version: '7.4'\n" in (
        changed.output)
    assert changed.output.endswith(f"1 of 2 nodes differ from the Compose files: run supervisor "
                                   f"import compose {root} --out {hosts}\n")
    assert (hosts / "pi4/services.yaml").read_text() == before
