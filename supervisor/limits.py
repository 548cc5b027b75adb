"""Limits on what one evaluation will read, so that no input can make time or memory explode.

Each can be changed by an environment variable; the defaults leave room for ten times the
largest fleet the benchmarks measure (100,000 services).
"""

from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple

from supervisor.errors import InputError, Problem


class Limits(NamedTuple):
    file_bytes: int = 64 * 1024 * 1024  # one JSON file of the world
    # One YAML file: parsing YAML costs about 2 s and 150 MB of memory per MB, so its limit is
    # lower. A node's services.yaml of 100 services is about 8 KB.
    yaml_bytes: int = 8 * 1024 * 1024
    depth: int = 100  # nesting of a YAML document
    string_chars: int = 1024 * 1024  # one string in any file
    nodes: int = 10_000  # in the inventory, or in the world
    services: int = 1_000_000  # in the inventory, or in the world
    # Work of one rule's matcher (see compiler.Budget): per subject, and over all its subjects.
    # A default rule spends a few steps per subject; a million is some 0.1 s of Python.
    rule_steps: int = 1_000_000
    rule_steps_total: int = 50_000_000


VARIABLES = {
    "file_bytes": "SUPERVISOR_MAX_FILE_BYTES",
    "yaml_bytes": "SUPERVISOR_MAX_YAML_BYTES",
    "depth": "SUPERVISOR_MAX_DEPTH",
    "string_chars": "SUPERVISOR_MAX_STRING_CHARS",
    "nodes": "SUPERVISOR_MAX_NODES",
    "services": "SUPERVISOR_MAX_SERVICES",
    "rule_steps": "SUPERVISOR_MAX_RULE_STEPS",
    "rule_steps_total": "SUPERVISOR_MAX_RULE_STEPS_TOTAL",
}


def current() -> Limits:
    """The limits in force: the defaults, or the environment's."""
    values = Limits()._asdict()
    problems = []
    for name, variable in VARIABLES.items():
        text = os.environ.get(variable)
        if text is None or text == "":
            continue
        try:
            values[name] = int(text)
            if values[name] < 1:
                raise ValueError
        except ValueError:
            problems.append(Problem(variable, message=f"{text!r} is not a positive whole number"))
    if problems:
        raise InputError(problems)
    return Limits(**values)


def too_many(where: str, what: str, count: int, limit: int, variable: str) -> InputError:
    return InputError([Problem(where, message=f"holds more than {limit} {what} ({count}); "
                               f"raise {variable} if that is right")])


# Python refuses to read a longer integer from text (its guard against quadratic time).
INTEGER_DIGITS = sys.get_int_max_str_digits() or 4300
_LONG_NUMBER = re.compile(rf"\d{{{INTEGER_DIGITS + 1},}}")


def long_integer(digits: int) -> str:
    """The message for a number too long to read, in our words rather than Python's."""
    return f"a number of {digits} digits; numbers are limited to {INTEGER_DIGITS} digits"


def find_long_integer(text: str) -> tuple[int, int, int] | None:
    """Line, column and length of the first run of more digits than a number may have."""
    found = _LONG_NUMBER.search(text)
    if found is None:
        return None
    start = found.start()
    return (text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start),
            found.end() - start)
