"""Variables in Compose files, as the Compose specification interpolates them, and the `.env`
file beside a Compose file that defines them.

`$VAR` and `${VAR}` are the variable's value; `${VAR:-default}` (unset or empty) and
`${VAR-default}` (unset) give a default, which may itself hold variables; `${VAR:?message}` and
`${VAR?message}` make a missing variable an error with that message; `${VAR:+other}` and
`${VAR+other}` give `other` when the variable is set; `$$` is a literal `$`. Unlike Compose,
which substitutes an empty string and warns, an unset variable without a default is an error:
an inventory written from a guess would be wrong without anyone noticing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPERATORS = (":-", "-", ":?", "?", ":+", "+")


class InterpolationError(ValueError):
    """A variable could not be resolved; `variable` names it when there is one."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """`text` with its variables replaced; `InterpolationError` for an unresolved one."""
    if "$" not in text:
        return text
    out: list[str] = []
    index = 0
    while index < len(text):
        dollar = text.find("$", index)
        if dollar < 0:
            out.append(text[index:])
            break
        out.append(text[index:dollar])
        following = text[dollar + 1:dollar + 2]
        if following == "$":
            out.append("$")
            index = dollar + 2
        elif following == "{":
            end = _closing_brace(text, dollar + 2)
            out.append(_braced(text[dollar + 2:end], variables))
            index = end + 1
        elif (name := _NAME.match(text, dollar + 1)) is not None:
            out.append(_value(name.group(), variables))
            index = name.end()
        else:
            raise InterpolationError(f"invalid interpolation at {text[dollar:dollar + 10]!r}: a "
                                     "'$' must start $VAR, ${VAR} or $$ (a literal '$')")
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    index = start
    while index < len(text):
        if text.startswith("$$", index):
            index += 2
            continue
        if text.startswith("${", index):
            depth += 1
            index += 2
            continue
        if text[index] == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    raise InterpolationError(f"invalid interpolation: '${{' without its '}}' in {text!r}")


def _braced(inside: str, variables: Mapping[str, str]) -> str:
    name = _NAME.match(inside)
    if name is None:
        raise InterpolationError(f"invalid interpolation: '${{{inside}}}' does not start with a "
                                 "variable name")
    rest = inside[name.end():]
    variable = name.group()
    if not rest:
        return _value(variable, variables)
    operator = next((o for o in _OPERATORS if rest.startswith(o)), None)
    if operator is None:
        raise InterpolationError(f"invalid interpolation: '${{{inside}}}': after the name, "
                                 "expected one of :- - :? ? :+ +", variable)
    argument = rest[len(operator):]
    value = variables.get(variable)
    present = value is not None and (value != "" or not operator.startswith(":"))
    if operator in (":-", "-"):
        return value if present and value is not None else interpolate(argument, variables)
    if operator in (":?", "?"):
        if present and value is not None:
            return value
        raise InterpolationError(f"variable {variable} is required: "
                                 f"{interpolate(argument, variables) or 'it is not set'}",
                                 variable)
    return interpolate(argument, variables) if present else ""


def _value(variable: str, variables: Mapping[str, str]) -> str:
    value = variables.get(variable)
    if value is None:
        raise InterpolationError(
            f"variable {variable} is not set (define it in the .env file beside the Compose "
            f"file or in the environment, or give a default: ${{{variable}:-...}})", variable)
    return value


def parse_dotenv(text: str, environment: Mapping[str, str]) -> tuple[dict[str, str],
                                                                     list[tuple[int, str]]]:
    """The variables an `.env` file defines, and (line, message) for each line that is not
    `KEY=VALUE`. Values are unquoted, 'single-quoted' (literal) or "double-quoted" (with
    escapes); unquoted and double-quoted values may use variables defined above them or in
    the environment. `export KEY=VALUE` is accepted, as shells write it."""
    defined: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, equals, value = line.partition("=")
        key = key.strip()
        if not equals or not _NAME.fullmatch(key):
            problems.append((number, f"expected KEY=VALUE, found {raw.strip()[:60]!r}"))
            continue
        value = value.strip()
        try:
            if len(value) >= 2 and value[0] == value[-1] == "'":
                defined[key] = value[1:-1]
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = (value[1:-1].replace("\\n", "\n").replace("\\t", "\t")
                         .replace('\\"', '"').replace("\\\\", "\\"))
            else:
                value = re.split(r"\s+#", value, maxsplit=1)[0].rstrip()
            defined[key] = interpolate(value, {**defined, **environment})
        except InterpolationError as error:
            problems.append((number, str(error)))
    return defined, problems
