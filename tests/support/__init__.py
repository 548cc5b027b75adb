"""Helpers shared by the test modules, and fixtures for the real servers the integration tests
start (one module per server). Test modules import from here, never from `conftest`."""
from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Callable

import pytest

UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need(program: str, package: str) -> str:
    """The path of `program`. Without it, a test skips saying which Debian package brings it;
    under CI it fails instead, since `.ci/run` installs every package the tests need."""
    found = shutil.which(program) or next(
        (p for p in (f"/usr/sbin/{program}", f"/usr/bin/{program}") if os.access(p, os.X_OK)), None)
    if found is None:
        message = f"{program} not found: install Debian's {package} (apt-get install {package})"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition",
             step: float = 0.05) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(step)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
