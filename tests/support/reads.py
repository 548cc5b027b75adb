"""Spies on what a load of the world reads: its records, and its cache's shard files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from supervisor import cache, world


def records_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The world's records read from their files from now on (none, when the cache gives them
    all)."""
    read: list[str] = []
    real = world.read_record

    def counting(*args: Any, **kwargs: Any) -> Any:
        read.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(world, "read_record", counting)
    return read


def shard_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the world cache's shard files read from now on."""
    read: list[str] = []
    real = cache.read

    def counting(path: Path | None, expected: str) -> Any:
        if path is not None and path.name.startswith("world-"):
            read.append(path.name)
        return real(path, expected)

    monkeypatch.setattr(cache, "read", counting)
    return read
