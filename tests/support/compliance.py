"""The JMESPath compliance cases the project carries (tests/compliance/, see its README)."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SUITE = Path(__file__).resolve().parents[1] / "compliance"


def groups() -> Iterator[tuple[str, dict[str, Any]]]:
    """(file stem, group) for every group of cases, in file-name order."""
    for path in sorted(SUITE.glob("*.json")):
        content = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(content, list):  # schema.json describes the format; it holds no cases
            yield from ((path.stem, group) for group in content)
