"""Podman's Docker-compatible API for integration tests: `podman system service` on a private
socket, with its storage and state under a temporary directory, and the same offline busybox
image as tests/support/dockerd.py. The engine object is that module's `Dockerd`: the point of
the compatible API is that the same client code drives both.

    from support.podman import running_podman

    with running_podman() as podman:
        podman.run("web", "sleep", "600")

Outside CI it skips when podman is missing or not running as root; under CI those fail.
Podman runs healthchecks from systemd timers, which a test machine may not have: leave
healthchecks to the dockerd tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import UNDER_CI, need, wait_for
from support.dockerd import Dockerd, dying_with_us, import_busybox

# Podman raises a container's open-file and process limits by default, which fails inside
# a container or VM that may not raise them ("error setting rlimit type 7"). Not the
# systemd cgroup manager nor journald either: neither need be there.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@contextlib.contextmanager
def running_podman() -> Iterator[Dockerd]:
    program = need("podman", "podman")
    busybox = need("busybox", "busybox-static")
    if os.geteuid() != 0:
        message = "podman's service runs rootful here, which needs root"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    root = Path(tempfile.mkdtemp(prefix="podman-", dir="/tmp"))
    (root / "containers.conf").write_text(CONTAINERS_CONF)
    log = (root / "podman.log").open("wb")
    process = subprocess.Popen(
        dying_with_us([program, "--root", str(root / "storage"), "--runroot", str(root / "run"),
                       "--tmpdir", str(root / "tmp"), "system", "service", "--time=0",
                       f"unix://{root}/podman.sock"]),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "CONTAINERS_CONF": str(root / "containers.conf")})
    log.close()
    engine = Dockerd(root, process, socket="podman.sock")
    try:
        wait_for(lambda: _answers(engine), timeout=60, what="podman's service to answer")
        import_busybox(engine, busybox)
        yield engine
    finally:
        _stop(engine)
        shutil.rmtree(root, ignore_errors=True)


def _answers(engine: Dockerd) -> bool:
    from docker.errors import DockerException
    from requests import RequestException

    if engine.process.poll() is not None:
        log = (engine.root / "podman.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"podman system service exited ({engine.process.returncode}):\n{log}")
    try:
        return bool(engine.client.ping())
    except (DockerException, RequestException, OSError):
        pass
    if engine._client is not None:
        engine._client.close()
        engine._client = None
    return False


def _stop(engine: Dockerd) -> None:
    with contextlib.suppress(Exception):
        engine.remove_all()
    with contextlib.suppress(Exception):
        if engine._client is not None:
            engine._client.close()
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            engine.process.kill()
            engine.process.wait(timeout=10)
    with open("/proc/self/mounts") as mounts:
        mounted = [line.split()[1] for line in mounts
                   if line.split()[1].startswith(f"{engine.root}/")]
    for mount in reversed(mounted):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
