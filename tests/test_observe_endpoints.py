"""`--node NAME=ENDPOINT`: parsing, and failures put in words that name node and endpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from supervisor.cli import app
from supervisor.observe.endpoints import (
    Endpoint,
    EndpointError,
    connect,
    describe,
    local_endpoint,
    parse_node_option,
    parse_node_options,
)

runner = CliRunner()


@pytest.mark.parametrize(("text", "url"), [
    ("nas01=unix:///var/run/docker.sock", "unix:///var/run/docker.sock"),
    ("nas01=unix:///run/user/1000/podman/podman.sock", "unix:///run/user/1000/podman/podman.sock"),
    ("nas01=tcp://10.0.0.5:2375", "tcp://10.0.0.5:2375"),
    ("nas01=tcp://nas01.lan:2375/", "tcp://nas01.lan:2375"),
    ("nas01=tcp://[fd00::5]:2375", "tcp://[fd00::5]:2375"),
    ("nas01=ssh://admin@nas01.lan", "ssh://admin@nas01.lan"),
    ("nas01=ssh://nas01.lan:2222", "ssh://nas01.lan:2222"),
])
def test_endpoints_accepted(text: str, url: str) -> None:
    assert parse_node_option(text) == Endpoint("nas01", url)


@pytest.mark.parametrize(("text", "message"), [
    ("nas01", "--node nas01: expected NAME=ENDPOINT"),
    ("=unix:///x.sock", "expected NAME=ENDPOINT"),
    ("NAS01=unix:///x.sock", "node name 'NAS01' is not valid"),
    ("nas01=http://host:2375", "endpoint 'http://host:2375' is not one of"),
    ("nas01=/var/run/docker.sock", "is not one of unix:///var/run/docker.sock"),
    ("nas01=unix://relative.sock", "endpoint 'unix://relative.sock' is malformed"),
    ("nas01=tcp://", "is malformed"),
    ("nas01=tcp://host:99999", "port 99999 is out of range"),
    ("nas01=ssh://us er@host", "is malformed"),
])
def test_malformed_endpoints_name_the_node_option(text: str, message: str) -> None:
    with pytest.raises(EndpointError) as raised:
        parse_node_option(text)
    assert message in str(raised.value)


def test_every_bad_node_is_reported_and_a_node_named_twice_is_one() -> None:
    with pytest.raises(EndpointError) as raised:
        parse_node_options(["a=tcp://h:1", "a=tcp://h:2", "b=ftp://x"])
    assert [str(p) for p in raised.value.problems] == [
        "--node a=tcp://h:2: node a is already observed at tcp://h:1",
        ("--node b=ftp://x: endpoint 'ftp://x' is not one of unix:///var/run/docker.sock, "
         "tcp://host:2375 or ssh://user@host"),
    ]


def test_the_local_engine_is_the_node_named_after_the_host(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "NAS01")
    assert local_endpoint({}) == Endpoint("nas01", "unix:///var/run/docker.sock")
    assert local_endpoint({"DOCKER_HOST": "tcp://h:2375"}) == Endpoint("nas01", "tcp://h:2375")
    monkeypatch.setattr("socket.gethostname", lambda: "my_laptop!")
    with pytest.raises(EndpointError, match="name the node with --node NAME="):
        local_endpoint({})


@pytest.mark.parametrize(("cause", "message"), [
    (FileNotFoundError(2, "No such file"), "no socket at /x.sock (is the engine running?)"),
    (PermissionError(13, "Permission denied"), "permission denied on /x.sock"),
    (ConnectionRefusedError(111, "refused"), "connection refused"),
    (TimeoutError("timed out"), "no answer within 10 s"),
])
def test_failures_in_words(cause: Exception, message: str) -> None:
    wrapped = RuntimeError("Error while fetching server API version")
    wrapped.__cause__ = OSError("Connection aborted.", cause)
    assert describe(wrapped, Endpoint("n", "unix:///x.sock")).startswith(message)


def test_a_missing_socket_fails_naming_node_and_endpoint(tmp_path: Path) -> None:
    endpoint = Endpoint("nas01", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EndpointError) as raised:
        connect(endpoint)
    assert str(raised.value) == (f"node nas01 (unix://{tmp_path}/none.sock): no socket at "
                                 f"{tmp_path}/none.sock (is the engine running?)")


@pytest.mark.parametrize("engine", ["missing", "refusing"])
def test_an_engine_not_there_leaves_no_socket_to_the_garbage_collector(
        tmp_path: Path, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK dropped the socket of a failed connect unclosed, in a reference cycle: its
    ResourceWarning surfaced at whatever collection came next, failing some later test."""
    import gc
    import socket
    import warnings

    path = tmp_path / "engine.sock"
    bound = socket.socket(socket.AF_UNIX)
    if engine == "refusing":
        bound.bind(str(path))  # bound, not listening: the connect is refused
    unraised: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda raised: unraised.append(raised.exc_value))
    gc.collect()
    gc.disable()  # only the collection below may find what the failure left
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(EndpointError):
                connect(Endpoint("nas01", f"unix://{path}"), timeout=5)
            gc.collect()
    finally:
        gc.enable()
        bound.close()
    assert [str(error) for error in unraised] == []


def test_a_socket_nobody_answers_on_times_out(tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as silent:
        silent.bind(str(tmp_path / "silent.sock"))
        silent.listen(1)
        with pytest.raises(EndpointError, match=r"no answer within 0\.5 s"):
            connect(Endpoint("nas01", f"unix://{tmp_path}/silent.sock"), timeout=0.5)


def test_once_an_unreachable_endpoint_is_exit_2_after_the_node_is_written_offline(
        tmp_path: Path) -> None:
    result = runner.invoke(app, ["observe", "docker", "--node", f"nas01=unix://{tmp_path}/x",
                                 "--world", str(tmp_path / "world"), "--once"])
    assert result.exit_code == 2
    assert f"node nas01 (unix://{tmp_path}/x): no socket at {tmp_path}/x" in result.output
    assert "Traceback" not in result.output
    assert (tmp_path / "world" / "nodes" / "nas01.json").read_text() == (
        '{\n  "status": "offline"\n}\n')


@pytest.mark.parametrize(("arguments", "message"), [
    (["--node", "nas01"], "--node nas01: expected NAME=ENDPOINT"),
    (["--once", "--interval", "5"], "--once: excludes --interval"),
    (["--interval", "0"], "--interval: must be a positive number of seconds"),
    (["--timeout", "-1"], "--timeout: must be a positive number of seconds"),
])
def test_bad_options_are_exit_2(tmp_path: Path, arguments: list[str], message: str) -> None:
    result = runner.invoke(app, ["observe", "docker", "--node", "n=unix:///x",
                                 "--world", str(tmp_path / "w"), *arguments])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "w").exists()


def test_a_world_that_is_a_file_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text("{}")
    result = runner.invoke(app, ["observe", "docker", "--node", "n=unix:///x",
                                 "--world", str(tmp_path / "world.json")])
    assert result.exit_code == 2
    assert "observers write the world as a directory" in result.output


def test_in_the_loop_a_failing_endpoint_is_reported_and_retried(tmp_path: Path) -> None:
    """A real process: it keeps observing after failures, and stops cleanly on SIGTERM."""
    process = subprocess.Popen(
        [sys.executable, "-m", "supervisor", "observe", "docker", "--node",
         f"nas01=unix://{tmp_path}/x", "--world", str(tmp_path / "world"), "--interval", "0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"})
    try:
        deadline = time.monotonic() + 60
        lines: list[str] = []
        assert process.stderr is not None
        while sum("no socket at" in line for line in lines) < 3 and time.monotonic() < deadline:
            lines.append(process.stderr.readline())
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert sum("no socket at" in line for line in lines) >= 3
    assert process.returncode == 0
    assert "Traceback" not in err + "".join(lines)
    assert out.count("1 node (0 online)") >= 3


def test_a_socket_the_user_may_not_open_is_a_permission_error() -> None:
    """As a user who may not open the socket (`nobody`, when the tests run as root)."""
    import shutil
    import socket
    import tempfile

    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: permissions cannot bite")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        prefix = []
    scratch = Path(tempfile.mkdtemp(prefix="supervisor-perm-"))  # tmp_path is root's alone
    try:
        scratch.chmod(0o777)
        with socket.socket(socket.AF_UNIX) as engine:
            engine.bind(str(scratch / "docker.sock"))
            engine.listen(1)
            (scratch / "docker.sock").chmod(0o600)
            done = subprocess.run(
                [*prefix, sys.executable, "-m", "supervisor", "observe", "docker", "--node",
                 f"nas01=unix://{scratch}/docker.sock", "--world", str(scratch / "world"),
                 "--once"], capture_output=True, text=True, timeout=60, check=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(
        f"node nas01 (unix://{scratch}/docker.sock): permission denied on {scratch}/docker.sock "
        "(run as root, or as a member of the group that owns the socket)\n")


def test_an_ssh_endpoint_runs_ssh_and_its_failure_is_named(tmp_path: Path) -> None:
    """Port 1 on loopback: the system's ssh is run, and refused."""
    import shutil

    if shutil.which("ssh") is None:
        pytest.skip("ssh not found: install Debian's openssh-client")
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "observe", "docker", "--node",
         "nas01=ssh://nobody@127.0.0.1:1", "--world", str(tmp_path / "world"), "--once",
         "--timeout", "10"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Connection refused" in done.stderr  # ssh's own words
    assert ("node nas01 (ssh://nobody@127.0.0.1:1): the ssh connection failed, or `docker "
            "system dial-stdio` failed on the host") in done.stderr
    assert "Traceback" not in done.stderr
