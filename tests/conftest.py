"""Fixtures only: shared helpers live in tests/support/ (import them from there)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.scenarios import ScenarioFactory, write_scenario

# Fixtures for real servers, available to every test module (they skip or fail when the server's
# package is missing, only when a test asks for them).
pytest_plugins = ["support.dockerd", "support.cache"]


@pytest.fixture
def scenario(tmp_path: Path) -> ScenarioFactory:
    def make(hosts: dict[str, str], **world: Any) -> Path:
        return write_scenario(tmp_path / "scenario", hosts, **world)

    return make
