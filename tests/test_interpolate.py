"""Compose interpolation and .env files, as the Compose specification describes them."""

from __future__ import annotations

import pytest

from supervisor.interpolate import InterpolationError, interpolate, parse_dotenv

VARIABLES = {"SET": "value", "EMPTY": "", "TAG": "29"}


@pytest.mark.parametrize(("text", "result"), [
    ("plain", "plain"),
    ("nextcloud:${TAG}", "nextcloud:29"),
    ("nextcloud:$TAG", "nextcloud:29"),
    ("$TAG-x", "29-x"),
    ("cost $$5", "cost $5"),
    ("$${NOT}", "${NOT}"),
    ("${UNSET:-fallback}", "fallback"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${EMPTY-fallback}", ""),
    ("${UNSET-fallback}", "fallback"),
    ("${SET:-fallback}", "value"),
    ("${UNSET:-${TAG}}", "29"),
    ("${UNSET:-${ALSO:-deep}}", "deep"),
    ("${SET:+other}", "other"),
    ("${EMPTY:+other}", ""),
    ("${EMPTY+other}", "other"),
    ("${UNSET+other}", ""),
    ("${SET:?needed}", "value"),
    ("a${TAG}b${SET}c", "a29bvaluec"),
])
def test_interpolation(text: str, result: str) -> None:
    assert interpolate(text, VARIABLES) == result


@pytest.mark.parametrize(("text", "message", "variable"), [
    ("${UNSET}", "variable UNSET is not set", "UNSET"),
    ("$UNSET", "variable UNSET is not set", "UNSET"),
    ("${UNSET:?set it in .env}", "variable UNSET is required: set it in .env", "UNSET"),
    ("${EMPTY:?}", "variable EMPTY is required: it is not set", "EMPTY"),
    ("${UNSET:-${ALSO}}", "variable ALSO is not set", "ALSO"),
    ("${TAG", "'${' without its '}'", None),
    ("${}", "does not start with a variable name", None),
    ("${TAG!x}", "expected one of :- - :? ? :+ +", "TAG"),
    ("price: $5", "a '$' must start $VAR, ${VAR} or $$", None),
])
def test_unresolved_or_malformed(text: str, message: str, variable: str | None) -> None:
    with pytest.raises(InterpolationError) as raised:
        interpolate(text, VARIABLES)
    assert message in str(raised.value)
    assert raised.value.variable == variable


def test_dotenv() -> None:
    text = "\n".join(line for line in [
        "# a comment",
        "",
        "TAG=29",
        "export OTHER=x",
        "QUOTED='${TAG} literal'",
        'DOUBLE="line\\nbreak ${TAG}"',
        "INLINE=v1.2 # pinned",
        "DERIVED=app-${TAG}",
        "HASH=a#b",
        "not a line",
        "BAD=${MISSING}",
    ])
    defined, problems = parse_dotenv(text, {})
    assert defined == {"TAG": "29", "OTHER": "x", "QUOTED": "${TAG} literal",
                       "DOUBLE": "line\nbreak 29", "INLINE": "v1.2", "DERIVED": "app-29",
                       "HASH": "a#b"}
    assert problems == [(10, "expected KEY=VALUE, found 'not a line'"),
                        (11, ("variable MISSING is not set (define it in the .env file beside "
                              "the Compose file or in the environment, or give a default: "
                              "${MISSING:-...})"))]


def test_the_environment_is_seen_from_dotenv() -> None:
    assert parse_dotenv("A=${HOME_DIR}/x", {"HOME_DIR": "/srv"}) == ({"A": "/srv/x"}, [])
