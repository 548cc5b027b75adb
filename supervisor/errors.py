"""Errors a user can act on. The CLI turns every `SupervisorError` into exit code 2."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Problem(NamedTuple):
    """One thing wrong with the input, and where it is.

    `path` is the dotted location inside the document (`services.web.depend_on`), or a rule
    or subject reference for problems that are not about a document position.
    """

    file: str = ""
    line: int | None = None
    column: int | None = None
    path: str = ""
    message: str = ""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where] if where else []
        if self.path:
            parts.append(self.path)
        parts.append(self.message)
        return ": ".join(parts)


class SupervisorError(Exception):
    """Bad input or usage. Carries every problem found, so all are reported at once."""

    def __init__(self, problems: Iterable[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(message=problems)]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class InputError(SupervisorError):
    """A file could not be read, parsed or validated."""


class RuleError(SupervisorError):
    """A rule is malformed, or failed while it was evaluated."""


def raise_if(problems: list[Problem], error: type[SupervisorError] = InputError) -> None:
    if problems:
        raise error(sorted(set(problems), key=_problem_order))


def _problem_order(problem: Problem) -> tuple[str, int, int, str, str]:
    return (problem.file, problem.line or 0, problem.column or 0, problem.path, problem.message)


def dotted(path: Iterable[object]) -> str:
    """`("services", "web", "depends_on", 0)` -> `services.web.depends_on[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
