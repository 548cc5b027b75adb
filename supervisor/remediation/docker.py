"""The `docker` executor: starts a stopped container, or restarts an unhealthy or failed one,
through the Docker Engine API of the subject's node: the endpoints `observe docker` reads
(`--node NAME=ENDPOINT`, Podman's compatible socket included), connected to and described in
the same words by `supervisor.observe.endpoints`.

`operation: auto` (the default) looks first: a container that is not running is started, one
that runs (unhealthy, say) is restarted. `start` and `restart` do only that.
"""

from __future__ import annotations

from typing import Any

from supervisor.remediation.executor import ArgumentProblem, Context, Done, seconds, unknown_keys

KNOWN = ("container", "operation", "timeout", "stop_timeout")
OPERATIONS = ("auto", "start", "restart")


class Docker:
    def check(self, args: dict[str, Any]) -> list[ArgumentProblem]:
        problems = unknown_keys(args, KNOWN)
        if not isinstance(args.get("container", ""), str):
            problems.append((("container",), "must be a container name or id (a template)"))
        if args.get("operation", "auto") not in OPERATIONS:
            problems.append((("operation",), f"must be one of: {', '.join(OPERATIONS)}"))
        problems.extend(seconds(args, "timeout", 30.0, 600.0)[1])
        problems.extend(seconds(args, "stop_timeout", 10.0, 600.0)[1])
        return problems

    def execute(self, args: dict[str, Any], context: Context) -> Done:
        from docker.errors import NotFound

        from supervisor.observe.endpoints import (
            EndpointError,
            collect_leaked_sockets,
            connect,
            describe,
            engine_errors,
            parse_endpoint,
        )

        url = context.endpoints.get(context.node)
        if url is None:
            return Done(False, f"no Docker endpoint for node {context.node} (give --node "
                        f"{context.node}=ENDPOINT)")
        container = str(args.get("container", ""))
        if not container:
            return Done(False, "no container named (the policy's container is empty)")
        timeout = float(args.get("timeout", 30.0))
        operation = str(args.get("operation", "auto"))
        try:
            endpoint = parse_endpoint(context.node, url)
            client = connect(endpoint, timeout)
        except EndpointError as error:
            return Done(False, str(error.problems[0]))
        message = None
        try:
            if operation == "auto":
                state = client.api.inspect_container(container)["State"]
                operation = "restart" if state.get("Running") else "start"
            if operation == "start":
                client.api.start(container)
            else:
                client.api.restart(container, timeout=int(float(args.get("stop_timeout", 10))))
        except NotFound:
            message = f"no container {container!r} on node {context.node} ({url})"
        except engine_errors() as error:
            message = f"node {context.node} ({url}): {describe(error, endpoint, timeout)}"
        finally:
            client.close()
        if message is not None:
            collect_leaked_sockets(endpoint)
            return Done(False, message)
        return Done(True, f"{operation}ed container {container} on node {context.node}")


EXECUTOR = Docker()
