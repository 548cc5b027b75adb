"""The executors: `command` against real processes; `docker`'s failures that need no dockerd
(tests/test_remediation_dockerd.py runs it against a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import wait_for

from supervisor.remediation.command import EXECUTOR as COMMAND
from supervisor.remediation.docker import EXECUTOR as DOCKER
from supervisor.remediation.executor import Context

HERE = Context(node="nas01", endpoints={})


def test_arguments_reach_the_program_unchanged_and_no_shell_sees_them(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    out = tmp_path / "out"
    done = COMMAND.execute({"argv": ["/bin/sh", "-c", 'printf "%s|" "$@" > "$0"', str(out),
                                     f"web; touch {planted}", "$(id)", "a  b"]}, HERE)
    assert done.ok, done.detail
    assert out.read_text() == f"web; touch {planted}|$(id)|a  b|"
    assert not planted.exists()


def test_the_environment_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    out = tmp_path / "env"
    done = COMMAND.execute({"argv": ["/bin/sh", "-c", f"env > {out}"],
                            "env": {"ONLY": "this"}}, HERE)
    assert done.ok, done.detail
    names = sorted(line.split("=", 1)[0] for line in out.read_text().splitlines())
    assert "SECRET_TOKEN" not in names
    assert {"ONLY", "PATH", "LANG"} <= set(names)


def test_a_failure_says_why() -> None:
    done = COMMAND.execute({"argv": ["/bin/sh", "-c", "echo disk full >&2; exit 3"]}, HERE)
    assert not done.ok
    assert done.detail == "/bin/sh exited with status 3: disk full"
    missing = COMMAND.execute({"argv": ["/nonexistent/restart"]}, HERE)
    assert missing == (False, "cannot run /nonexistent/restart: No such file or directory")


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild"
    # The program starts a grandchild that would outlive it, then hangs.
    done = COMMAND.execute({"argv": ["/bin/sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"],
                            "timeout": 0.5}, HERE)
    assert not done.ok
    assert done.detail.startswith("timed out after 0.5 s; its process group was killed")
    grandchild = int(pidfile.read_text())

    def dead() -> bool:
        # Killed, it is a zombie until init reaps it, which under load takes its time.
        try:
            with open(f"/proc/{grandchild}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    wait_for(dead, timeout=30, what=f"grandchild {grandchild} to die with its group")


def test_docker_without_an_endpoint_for_the_node_says_so() -> None:
    done = DOCKER.execute({"container": "web"}, HERE)
    assert done == (False, "no Docker endpoint for node nas01 (give --node nas01=ENDPOINT)")


def test_docker_endpoint_that_does_not_answer(tmp_path: Path) -> None:
    endpoint = f"unix://{tmp_path}/docker.sock"
    done = DOCKER.execute({"container": "web"}, Context("nas01", {"nas01": endpoint}))
    assert done == (False, (f"node nas01 ({endpoint}): no socket at {tmp_path}/docker.sock (is "
                    "the engine running?)"))
