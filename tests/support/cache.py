"""Every test gets a cache directory of its own (see supervisor/cache.py), never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                   ) -> None:
    """Each test starts with an empty cache of its own; subprocesses inherit it."""
    monkeypatch.setenv("SUPERVISOR_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SUPERVISOR_CACHE", raising=False)
