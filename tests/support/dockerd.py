"""A real Docker engine for integration tests: Debian's `dockerd`, with networking off and every
directory private to the test session, and a tiny busybox image built offline (no registry is
reachable, nor may be).

    from support.dockerd import Dockerd  # the fixtures come through conftest's pytest_plugins

    def test_something(dockerd: Dockerd) -> None:
        dockerd.run("web", "sleep", "600")

`dockerd_session` is the engine, started once per session; `dockerd` hands it to one test and
removes every container the test left (also when it failed). Containers run with network mode
none. Outside CI the fixture skips when docker.io or busybox-static is missing, or when not
running as root (dockerd needs it); under CI those fail.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor.observe.endpoints import close_failed_connects
from support import UNDER_CI, need, wait_for

IMAGE = "busybox-offline:1"
# The applets the tests' containers use; each is a symlink to the one static binary.
APPLETS = ("sh", "true", "false", "sleep", "echo", "cat", "ls", "test", "kill", "env", "touch")


def busybox_image_tar(busybox: str) -> bytes:
    """A root filesystem holding only a static busybox and its applets, as a tar archive."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for directory in ("bin", "tmp"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.mode = 0o755
        data = Path(busybox).read_bytes()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    return archive.getvalue()


def import_busybox(engine: Dockerd, busybox: str) -> None:
    """`docker import` of the busybox root filesystem as IMAGE. Tagged in a second call:
    Podman's compatible API ignores the tag of an import (it names the image `:latest`)."""
    import json

    answer = engine.client.api.import_image_from_data(
        busybox_image_tar(busybox), repository=IMAGE.split(":")[0], changes=['CMD ["/bin/sh"]'])
    image = json.loads(answer.strip().splitlines()[-1])
    image_id = image.get("id") or image.get("status")
    engine.client.api.tag(image_id, IMAGE.split(":")[0], IMAGE.split(":")[1])


class Dockerd:
    """A running engine: its socket, a client, and helpers that create containers the way the
    tests need them (network mode none, the offline image)."""

    def __init__(self, root: Path, process: subprocess.Popen[bytes],
                 socket: str = "docker.sock") -> None:
        self.root = root
        self.socket = root / socket
        self.host = f"unix://{self.socket}"
        self.process = process
        self.image = IMAGE
        self._client: Any = None

    @property
    def client(self) -> Any:
        """A `docker.DockerClient` on this engine."""
        if self._client is None:
            import docker

            close_failed_connects()  # an engine not up yet leaves no socket to the collector
            self._client = docker.DockerClient(base_url=self.host, timeout=60)
        return self._client

    @property
    def environment(self) -> dict[str, str]:
        """The environment for a `docker` or `docker-compose` process aimed at this engine."""
        return {**os.environ, "DOCKER_HOST": self.host}

    def run(self, name: str, *command: str, labels: dict[str, str] | None = None,
            healthcheck: list[str] | None = None, restart: str | None = None,
            image: str | None = None, **options: Any) -> Any:
        """Starts a container (detached, network none) and returns it. `healthcheck` is a
        CMD that runs every second, one failure making the container unhealthy."""
        if healthcheck is not None:
            options["healthcheck"] = {"test": ["CMD", *healthcheck], "interval": 1_000_000_000,
                                      "timeout": 1_000_000_000, "retries": 1}
        if restart is not None:
            options["restart_policy"] = {"Name": restart}
        return self.client.containers.run(image or self.image, list(command) or None, name=name,
                                          detach=True, network_mode="none",
                                          labels=labels or {}, **options)

    def state(self, name: str) -> dict[str, Any]:
        """`docker inspect`'s State of a container, read afresh."""
        return dict(self.client.api.inspect_container(name)["State"])

    def wait_state(self, name: str, status: str, *, health: str | None = None,
                   timeout: float = 60) -> None:
        def reached() -> bool:
            state = self.state(name)
            return state["Status"] == status and (
                health is None or (state.get("Health") or {}).get("Status") == health)

        wait_for(reached, timeout=timeout,
                 what=f"container {name} to be {status}" + (f" and {health}" if health else ""))

    def compose(self, directory: Path, *arguments: str) -> None:
        """Runs Debian's `docker-compose` (1.29) in `directory` against this engine."""
        program = need("docker-compose", "docker-compose")
        done = subprocess.run([program, *arguments], cwd=directory, env=self.environment,
                              capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(arguments)} failed:\n{done.stderr}")

    def remove_all(self) -> None:
        for container in self.client.containers.list(all=True):
            with contextlib.suppress(Exception):
                container.remove(force=True)


def dying_with_us(command: list[str]) -> list[str]:
    """`command`, to be sent SIGTERM when the test process dies, so that a run that is killed
    (a timeout, ^C twice) leaves no server behind with its mounts: util-linux's `setpriv
    --pdeathsig` where it is, as `preexec_fn` is unsafe once threads run."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


def start_dockerd(root: Path) -> Dockerd:
    """Starts dockerd with networking off and all its state under `root`; waits until it
    answers, and imports the offline image."""
    program = need("dockerd", "docker.io")
    busybox = need("busybox", "busybox-static")
    log = (root / "dockerd.log").open("wb")
    process = subprocess.Popen(dying_with_us(
        [program, f"--host=unix://{root}/docker.sock", "--data-root", str(root / "data"),
         "--exec-root", str(root / "exec"), "--pidfile", str(root / "dockerd.pid"),
         "--bridge=none", "--iptables=false", "--ip-forward=false",
         "--ip-masq=false", "--shutdown-timeout=1", "--log-level=warn"]),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    engine = Dockerd(root, process)
    from docker.errors import DockerException
    from requests import RequestException

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"dockerd exited ({process.returncode}):\n{_tail(root)}")
        try:
            return bool(engine.client.ping())
        except (DockerException, RequestException, OSError):  # not listening yet
            pass
        if engine._client is not None:
            engine._client.close()
            engine._client = None
        return False

    try:
        wait_for(answers, timeout=60, what=f"dockerd to answer at {engine.host}", step=0.1)
        import_busybox(engine, busybox)
    except BaseException:
        stop_dockerd(engine)
        raise
    return engine


def stop_dockerd(engine: Dockerd) -> None:
    """Removes the containers, stops the engine (and its containerd), and unmounts what it
    left mounted, so that the directory can go."""
    with contextlib.suppress(Exception):
        engine.remove_all()
    with contextlib.suppress(Exception):
        engine.client.close()
    if engine.process.poll() is None:
        engine.process.send_signal(signal.SIGTERM)
        try:
            engine.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(engine.process.pid, signal.SIGKILL)
            engine.process.wait(timeout=10)
    for mount in reversed(_mounts_under(engine.root)):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)


def _mounts_under(root: Path) -> list[str]:
    with contextlib.suppress(OSError), open("/proc/self/mounts") as mounts:
        return [line.split()[1] for line in mounts if line.split()[1].startswith(f"{root}/")]
    return []


def _tail(root: Path) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((root / "dockerd.log").read_text(errors="replace").splitlines()[-20:])
    return ""


@pytest.fixture(scope="session")
def dockerd_session() -> Iterator[Dockerd]:
    need("dockerd", "docker.io")
    if os.geteuid() != 0:
        message = "dockerd needs root to run here"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    # A short path under /tmp: a unix socket's path may not exceed 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
    engine = start_dockerd(root)
    try:
        yield engine
    finally:
        stop_dockerd(engine)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dockerd(dockerd_session: Dockerd) -> Iterator[Dockerd]:
    try:
        yield dockerd_session
    finally:
        dockerd_session.remove_all()


def wait_restarting(engine: Dockerd, name: str, restarts: int = 5, timeout: float = 60) -> None:
    """Waits until a crash-looping container sits in Docker's restart back-off after at least
    `restarts` restarts: the back-off then lasts seconds (it doubles from 100 ms), so an
    observation made right away sees it restarting rather than in its brief run."""
    def looping() -> bool:
        state = engine.state(name)
        count = engine.client.api.inspect_container(name)["RestartCount"]
        return bool(state["Restarting"]) and count >= restarts

    wait_for(looping, timeout=timeout, what=f"container {name} to crash-loop")
