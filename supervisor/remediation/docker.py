"""The `docker` executor: starts a stopped container, or restarts an unhealthy or failed one,
through the Docker Engine API of the subject's node (the endpoints the Docker observer reads;
Podman's compatible socket works too).

`operation: auto` (the default) looks first: a container that is not running is started, one
that runs (unhealthy, say) is restarted. `start` and `restart` do only that.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any

from supervisor.remediation.executor import ArgumentProblem, Context, Done, seconds, unknown_keys

KNOWN = ("container", "operation", "timeout", "stop_timeout")
OPERATIONS = ("auto", "start", "restart")
DEFAULT_CONTAINER = "{{ service.name }}"
API = "/v1.41"  # Docker 20.10 and later, and Podman's compatible API, speak it


class Docker:
    def check(self, args: dict[str, Any]) -> list[ArgumentProblem]:
        problems = unknown_keys(args, KNOWN)
        if not isinstance(args.get("container", DEFAULT_CONTAINER), str):
            problems.append((("container",), "must be a container name or id (a template)"))
        if args.get("operation", "auto") not in OPERATIONS:
            problems.append((("operation",), f"must be one of: {', '.join(OPERATIONS)}"))
        problems.extend(seconds(args, "timeout", 30.0, 600.0)[1])
        problems.extend(seconds(args, "stop_timeout", 10.0, 600.0)[1])
        return problems

    def execute(self, args: dict[str, Any], context: Context) -> Done:
        endpoint = context.endpoints.get(context.node) or context.endpoints.get("*")
        if endpoint is None:
            return Done(False, f"no Docker endpoint for node {context.node} "
                        "(give --endpoint NODE=URL)")
        container = urllib.parse.quote(str(args.get("container", "")), safe="")
        if not container:
            return Done(False, "no container named")
        timeout = float(args.get("timeout", 30.0))
        operation = args.get("operation", "auto")
        try:
            if operation == "auto":
                status, body = _call(endpoint, "GET", f"/containers/{container}/json", timeout)
                if status != 200:
                    return Done(False, _refusal(status, body, container))
                state = body.get("State", {}) if isinstance(body, dict) else {}
                operation = "restart" if state.get("Running") else "start"
            path = f"/containers/{container}/{operation}"
            if operation == "restart":
                path += f"?t={int(float(args.get('stop_timeout', 10.0)))}"
            status, body = _call(endpoint, "POST", path, timeout)
        except (OSError, http.client.HTTPException, ValueError) as error:
            return Done(False, f"Docker endpoint {endpoint}: {error}")
        if status == 204:
            return Done(True, f"{operation}ed container {urllib.parse.unquote(container)}")
        if status == 304:
            return Done(True, f"container {urllib.parse.unquote(container)} was already running")
        return Done(False, _refusal(status, body, container))


def _refusal(status: int, body: Any, container: str) -> str:
    message = body.get("message") if isinstance(body, dict) else None
    return (f"Docker answered {status} for container {urllib.parse.unquote(container)}"
            f"{': ' + str(message) if message else ''}")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def connection(endpoint: str, timeout: float) -> http.client.HTTPConnection:
    """`unix:///run/docker.sock` or `tcp://host:port` (plain HTTP)."""
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme == "unix" and parsed.path:
        return _UnixConnection(parsed.path, timeout)
    if parsed.scheme in ("tcp", "http") and parsed.hostname:
        return http.client.HTTPConnection(parsed.hostname, parsed.port or 2375, timeout=timeout)
    raise ValueError("not a Docker endpoint (unix:///path/docker.sock or tcp://host:port)")


def _call(endpoint: str, method: str, path: str, timeout: float) -> tuple[int, Any]:
    conn = connection(endpoint, timeout)
    try:
        conn.request(method, API + path, headers={"Content-Length": "0"} if method == "POST"
                     else {})
        response = conn.getresponse()
        raw = response.read(1 << 20)
    finally:
        conn.close()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return response.status, body


EXECUTOR = Docker()
