"""Fixtures only: shared helpers live in tests/support/ (import them from there)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.scenarios import ScenarioFactory, write_scenario

# Fixtures for real servers, available to every test module (they skip or fail when the server's
# package is missing, only when a test asks for them).
pytest_plugins = ["support.dockerd"]


@pytest.fixture
def scenario(tmp_path: Path) -> ScenarioFactory:
    def make(hosts: dict[str, str], **world: Any) -> Path:
        return write_scenario(tmp_path / "scenario", hosts, **world)

    return make


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                   ) -> None:
    """Each test starts with an empty cache of its own, never the user's."""
    monkeypatch.setenv("SUPERVISOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SUPERVISOR_CACHE", raising=False)
