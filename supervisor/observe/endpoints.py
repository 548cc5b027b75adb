"""Docker Engine API endpoints: `--node NAME=ENDPOINT`, parsed, connected to, and their failures
put in words that name the node and the endpoint.

Shared by `observe docker` and the remediation's docker executor, so that both accept the same
endpoints and say the same thing when one cannot be reached. Podman's Docker-compatible socket
is a `unix://` endpoint like any other. The `docker` SDK is imported only when connecting.
"""

from __future__ import annotations

import os
import re
import socket
from typing import TYPE_CHECKING, Any, NamedTuple

from supervisor.errors import Problem, SupervisorError
from supervisor.model import NAME

if TYPE_CHECKING:
    import docker

LOCAL_SOCKET = "unix:///var/run/docker.sock"
TIMEOUT_SECONDS = 10.0
SCHEMES = ("unix", "tcp", "ssh")

_HOST = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
_PORT = r"(:(?P<port>\d{1,5}))?"
_FORMS = {
    "unix": re.compile(r"unix://(?P<path>/.*)"),
    "tcp": re.compile(rf"tcp://{_HOST}{_PORT}/?"),
    # `use_ssh_client` runs the system's `ssh`, so ~/.ssh/config, agents and jump hosts apply.
    "ssh": re.compile(rf"ssh://([A-Za-z0-9._-]+@)?{_HOST}{_PORT}"),
}
_EXAMPLES = "unix:///var/run/docker.sock, tcp://host:2375 or ssh://user@host"


class EndpointError(SupervisorError):
    """An endpoint is malformed, or could not be reached."""


class Endpoint(NamedTuple):
    node: str  # the node this endpoint observes, as named in the inventory
    url: str  # unix:///path, tcp://host:port or ssh://[user@]host[:port]

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    def problem(self, message: str) -> Problem:
        return Problem(path=f"node {self.node} ({self.url})", message=message)


def parse_endpoint(node: str, url: str, *, option: str = "--node") -> Endpoint:
    """An endpoint for `node`; `EndpointError` naming both when either is malformed."""
    where = f"{option} {node}={url}" if option == "--node" else option
    if not NAME.fullmatch(node):
        raise EndpointError([Problem(path=where, message=f"node name {node!r} is not valid "
                                     "(lowercase letters, digits, '_', '.', '-'; at most 63)")])
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in _FORMS:
        raise EndpointError([Problem(path=where, message=f"endpoint {url!r} is not one of "
                                     f"{_EXAMPLES}")])
    form = _FORMS[scheme].fullmatch(url)
    if form is None:
        raise EndpointError([Problem(path=where, message=f"endpoint {url!r} is malformed; "
                                     f"expected {_EXAMPLES}")])
    port = form.groupdict().get("port")
    if port is not None and not 0 < int(port) < 65536:
        raise EndpointError([Problem(path=where, message=f"endpoint {url!r}: port {port} is "
                                     "out of range")])
    return Endpoint(node, url.rstrip("/") if scheme == "tcp" else url)


def parse_node_option(text: str) -> Endpoint:
    """`NAME=ENDPOINT`, as given to `--node`."""
    node, equals, url = text.partition("=")
    if not equals or not node or not url:
        raise EndpointError([Problem(path=f"--node {text}", message="expected NAME=ENDPOINT, "
                                     f"e.g. nas01=unix:///var/run/docker.sock ({_EXAMPLES})")])
    return parse_endpoint(node, url)


def parse_node_options(texts: list[str]) -> list[Endpoint]:
    """Every `--node`, all problems reported at once; a node named twice is an error."""
    problems: list[Problem] = []
    endpoints: dict[str, Endpoint] = {}
    for text in texts:
        try:
            endpoint = parse_node_option(text)
        except EndpointError as error:
            problems.extend(error.problems)
            continue
        if endpoint.node in endpoints:
            problems.append(Problem(path=f"--node {text}", message=f"node {endpoint.node} is "
                                    f"already observed at {endpoints[endpoint.node].url}"))
            continue
        endpoints[endpoint.node] = endpoint
    if problems:
        raise EndpointError(problems)
    return list(endpoints.values())


def local_endpoint(environment: dict[str, str] | None = None) -> Endpoint:
    """The local engine (`$DOCKER_HOST` honoured) as the node named after this host."""
    environment = dict(os.environ) if environment is None else environment
    node = socket.gethostname().lower()
    url = environment.get("DOCKER_HOST") or LOCAL_SOCKET
    if not NAME.fullmatch(node):
        raise EndpointError([Problem(path="--node", message=f"this host's name {node!r} is not "
                                     "a valid node name; name the node with --node NAME="
                                     f"{url}")])
    return parse_endpoint(node, url, option="$DOCKER_HOST" if "DOCKER_HOST" in environment
                          else "--node")


def connect(endpoint: Endpoint, timeout: float = TIMEOUT_SECONDS) -> docker.DockerClient:
    """A client that has already talked to the engine once (the API version check), so that
    an endpoint that does not answer fails here, in words, rather than mid-observation."""
    import docker

    close_failed_connects()
    try:
        return docker.DockerClient(base_url=endpoint.url, timeout=timeout,  # type: ignore[arg-type]
                                   use_ssh_client=endpoint.scheme == "ssh", max_pool_size=4)
    except engine_errors() as error:
        message = describe(error, endpoint, timeout)
    collect_leaked_sockets(endpoint)
    raise EndpointError([endpoint.problem(message)])


def close_failed_connects() -> None:
    """The SDK's unix transport (docker 7.1) drops the socket of a failed connect (no socket,
    refused, timed out) unclosed, in a reference cycle: its ResourceWarning then surfaced at
    whichever garbage collection came next, in whatever thread or test ran then, and collecting
    it quietly right after the failure lost the race to an automatic collection now and then.
    So its `connect` is replaced, once, by one that closes the socket on every path."""
    from docker.transport import unixconn

    unixconn.UnixHTTPConnection.connect = _unix_connect  # type: ignore[method-assign]


def _unix_connect(self: Any) -> None:
    """`UnixHTTPConnection.connect`, closing its socket when the connect fails."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(self.timeout)
        sock.connect(self.unix_socket)
    except BaseException:
        sock.close()
        raise
    self.sock = sock


def collect_leaked_sockets(endpoint: Endpoint) -> None:
    """The SDK's ssh transport leaves its `ssh` process, pipes and socket object to the garbage
    collector when the connection fails; collect them now, quietly, rather than have a
    ResourceWarning surface later at some random point. Call it after the `except` block, once
    the traceback holding them is gone. Other transports leave nothing (`close_failed_connects`)."""
    import gc
    import warnings

    if endpoint.scheme != "ssh":
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def engine_errors() -> tuple[type[BaseException], ...]:
    """What talking to an engine can raise: the SDK's errors, and the transport's (requests,
    or the `ssh` process) underneath. A function, so that the SDK is imported only when used."""
    import docker.errors
    import requests.exceptions

    return (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def describe(error: BaseException, endpoint: Endpoint, timeout: float = TIMEOUT_SECONDS) -> str:
    """What went wrong talking to `endpoint`, in the words a homelab operator acts on."""
    path = endpoint.url.removeprefix("unix://")
    for cause in _causes(error):
        if isinstance(cause, FileNotFoundError):
            return f"no socket at {path} (is the engine running?)"
        if isinstance(cause, PermissionError):
            return (f"permission denied on {path} (run as root, or as a member of the group "
                    "that owns the socket)")
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the engine running and listening there?)"
        if isinstance(cause, TimeoutError | socket.timeout) or "timed out" in str(cause).lower():
            return f"no answer within {timeout:g} s"
        if isinstance(cause, socket.gaierror):
            return f"host not found: {cause.strerror}"
    if endpoint.scheme == "ssh" and any(isinstance(c, BrokenPipeError | ConnectionResetError)
                                        for c in _causes(error)):
        # The transport is an `ssh` process, which said why on stderr; we only see it end.
        return ("the ssh connection failed, or `docker system dial-stdio` failed on the host "
                "(ssh's own message is above; keys and known hosts must let ssh log in without "
                "asking)")
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status is not None:
        return f"the engine answered HTTP {status}: {_first_line(error)}"
    return f"cannot talk to the engine: {_first_line(error)}"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and what caused it, however deeply the SDK and urllib3 wrapped it."""
    found: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending and len(found) < 20:
        current = pending.pop(0)
        found.append(current)
        pending.extend(c for c in (current.__cause__, current.__context__) if c is not None)
        pending.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300]
