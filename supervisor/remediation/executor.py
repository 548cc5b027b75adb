"""What the executors have in common, and the registry that names them.

An executor is a small module behind one protocol: it checks its arguments when the policy is
loaded (so a typo fails then, not at three in the morning), and it carries out one action,
reporting whether it worked and why not. It never raises for a failed action: a failure is an
outcome to log, not a crash.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from supervisor.compiler import compile_ast
from supervisor.functions import RuleFunctions
from supervisor.model import Template
from supervisor.remediation.policy import Arguments

# Where, inside an executor's `args`, a problem is (keys and list indexes), and what it is.
ArgumentProblem = tuple[tuple[str | int, ...], str]


class Done(NamedTuple):
    """How an action ended: `ok` when the executor did what it was asked (whether that fixed
    anything is for verification to say), and a line saying what happened."""

    ok: bool
    detail: str


class Context(NamedTuple):
    """What an executor may need beyond its arguments."""

    node: str  # the node the subject is on
    endpoints: dict[str, str]  # node name -> Docker endpoint URL (`--node NAME=ENDPOINT`)


class Executor(Protocol):
    def check(self, args: dict[str, Any]) -> list[ArgumentProblem]: ...

    def execute(self, args: dict[str, Any], context: Context) -> Done: ...


def _registry() -> dict[str, Executor]:
    from supervisor.remediation import command, docker

    return {"command": command.EXECUTOR, "docker": docker.EXECUTOR}


class _Registry(dict[str, Executor]):
    """The executors by name, filled on first use: the modules import nothing heavy, but the
    CLI should not pay for them before `remediate` runs."""

    def __missing__(self, name: str) -> Executor:
        self.update(_registry())
        return dict.__getitem__(self, name)


EXECUTORS: dict[str, Executor] = _Registry()
NAMES = ("command", "docker")  # the schema's enum; a test keeps the two in step

# Arguments an executor gets when the policy does not give them (templates included).
DEFAULT_ARGS: dict[str, dict[str, Any]] = {
    "docker": {"container": "{{ service.actual.container_name || service.name }}",
               "operation": "auto"},
}


def render(args: Arguments, document: dict[str, Any], functions: RuleFunctions) -> Any:
    """The arguments for one recommendation: every template filled in from its document.
    Raises ValueError, TypeError or a JMESPath error for a template that fails on it."""
    if isinstance(args, Template):
        text = args.literals[0]
        for ast, literal in zip(args.expressions, args.literals[1:], strict=True):
            text += _as_text(compile_ast(ast, functions=functions)(document)) + literal
        return text
    if isinstance(args, dict):
        return {key: render(value, document, functions) for key, value in args.items()}
    if isinstance(args, list):
        return [render(value, document, functions) for value in args]
    return args


def _as_text(value: Any) -> str:
    if value is None:
        raise ValueError("a placeholder is null")  # an argument is never silently empty
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


Checker = Callable[[dict[str, Any]], list[ArgumentProblem]]


def seconds(args: dict[str, Any], key: str, default: float, most: float
            ) -> tuple[float, list[ArgumentProblem]]:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= most:
        return default, [((key,), f"must be a number of seconds, more than 0 and at most {most:g}")]
    return float(value), []


def unknown_keys(args: dict[str, Any], known: tuple[str, ...]) -> list[ArgumentProblem]:
    return [((key,), f"unknown argument {key!r} (known: {', '.join(known)})")
            for key in args if key not in known]
