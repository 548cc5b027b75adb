"""The data model stands apart from the code that reads files."""

from __future__ import annotations

import json
import subprocess
import sys

from supervisor.errors import Problem
from supervisor.model import Rule, Written

IO_MODULES = ("yaml", "jsonschema", "jsonschema_rs", "supervisor.loader", "supervisor.schemas",
              "supervisor.safefile")


def test_the_engine_and_explain_import_nothing_that_reads_files() -> None:
    # A fresh interpreter: this test process has long since imported everything.
    code = ("import json, sys\n"
            "import supervisor.engine, supervisor.explain, supervisor.model, supervisor.merge\n"
            f"print(json.dumps(sorted(m for m in {IO_MODULES!r} if m in sys.modules)))\n")
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout
    assert json.loads(output) == []


def test_a_rule_locates_its_own_keys() -> None:
    rule = Rule(id="web-down", kind="service", condition="c", match="m", ast={},
                file="rules/a.yaml",
                written=Written(place=2, at=(10, 5), keys={"match": (12, 12)}))
    assert rule.problem("match", "is odd") == Problem(
        "rules/a.yaml", 12, 12, "rules[2].match", "rule 'web-down': is odd")
    # A key the rule does not have: the rule itself, as a reader would look for it.
    assert rule.problem("reason", "is odd") == Problem(
        "rules/a.yaml", 10, 5, "rules[2].reason", "rule 'web-down': is odd")
