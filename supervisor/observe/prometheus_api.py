"""Asking Prometheus (HTTP API v1) and Alertmanager (API v2), and nothing else.

Only the address the user gave is ever contacted: proxies from the environment are not used
and redirects are not followed, since either would send the request somewhere else.

Two kinds of failure, told apart because they call for different answers:
- `ObservationError`: the server could not be asked (refused, timed out, not Prometheus, busy).
  Nothing is known, so nothing is written; the loop retries. It is never "everything offline".
- `InputError`: Prometheus rejected a query of the map as invalid: the map must be fixed, and
  the message points at its line.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import Any

from supervisor.errors import InputError, Problem, SupervisorError
from supervisor.limits import current
from supervisor.observe.prometheus_map import Query
from supervisor.observe.prometheus_records import Results, Series

TIMEOUT_SECONDS = 10.0


class ObservationError(SupervisorError):
    """A source could not be observed; nothing was written."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx then surfaces as an HTTPError


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def base_url(text: str, option: str) -> str:
    """The server's address as the user wrote it, checked: http(s), a host, no query."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise InputError([Problem(option, message=f"{text!r} is not an http:// or https:// "
                                  "address (like http://127.0.0.1:9090)")])
    return text.rstrip("/")


def run_queries(url: str, queries: list[Query], at: datetime,
                timeout: float = TIMEOUT_SECONDS) -> Results:
    """Each query's instant vector, all evaluated at `at`: one consistent instant."""
    results: dict[str, list[Series]] = {}
    for query in queries:
        form = {"query": query.promql, "time": f"{at.timestamp():.3f}"}
        answer = _ask(f"{url}/api/v1/query", "prometheus", url, timeout,
                      urllib.parse.urlencode(form).encode(), query)
        results[query.promql] = _vector(answer, query, url)
    return results


def active_alerts(url: str, timeout: float = TIMEOUT_SECONDS) -> list[dict[str, Any]]:
    """Every alert Alertmanager holds that is not resolved: active, silenced or inhibited."""
    flags = "active=true&silenced=true&inhibited=true&unprocessed=true"
    answer = _ask(f"{url}/api/v2/alerts?{flags}", "alertmanager", url, timeout, None, None)
    if not isinstance(answer, list) or not all(isinstance(alert, dict) for alert in answer):
        raise ObservationError([Problem(f"alertmanager {url}", message="answered something "
                                        "other than a list of alerts; is this Alertmanager?")])
    return answer


def _ask(address: str, server: str, url: str, timeout: float, form: bytes | None,
         query: Query | None) -> Any:
    where = f"{server} {url}"
    request = urllib.request.Request(address, data=form, headers={"Accept": "application/json"})
    most = current().file_bytes
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body = response.read(most + 1)
    except urllib.error.HTTPError as error:
        detail = _error_text(error)
        if error.code == 400 and query is not None:
            raise InputError([query.problem(f"Prometheus at {url} rejected the query: "
                                            f"{detail}")]) from None
        raise ObservationError([Problem(where, message=f"answered HTTP {error.code} "
                                        f"{error.reason}: {detail}")]) from None
    except TimeoutError:
        raise ObservationError([Problem(where, message=f"did not answer within {timeout:g} s")]
                               ) from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, TimeoutError):
            raise ObservationError([Problem(where, message=f"did not answer within "
                                            f"{timeout:g} s")]) from None
        text = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        raise ObservationError([Problem(where, message=f"cannot be reached: {text}")]) from None
    except OSError as error:
        raise ObservationError([Problem(where, message=f"cannot be reached: {error}")]) from None
    if len(body) > most:
        raise ObservationError([Problem(where, message=f"answered more than {most} bytes")])
    try:
        return json.loads(body)
    except ValueError:
        raise ObservationError([Problem(where, message=f"answered something that is not JSON; "
                                        f"is this {server.capitalize()}'s address?")]) from None


def _error_text(error: urllib.error.HTTPError) -> str:
    """Prometheus's own explanation, from the error body, when it gives one."""
    try:
        answer = json.loads(error.read(64 * 1024))
    except (ValueError, OSError):
        return "no explanation given"
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])
    return "no explanation given"


def _vector(answer: Any, query: Query, url: str) -> list[Series]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or answer.get("status") != "success":
        raise ObservationError([Problem(f"prometheus {url}", message="answered something "
                                        "other than a query result; is this Prometheus?")])
    if data.get("resultType") != "vector":
        raise InputError([query.problem(f"gives a {data.get('resultType')}, not an instant "
                                        "vector: one sample per node or service is needed")])
    found = []
    for sample in data.get("result") or []:
        try:
            labels = {str(key): str(value) for key, value in sample["metric"].items()}
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            raise ObservationError([Problem(f"prometheus {url}", message="answered a sample "
                                            "that is not [time, value]")]) from None
        found.append(Series(labels, value))
    return found
