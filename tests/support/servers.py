"""The life of a real server process in an integration test, written once for every fixture:
started with its output in a log, waited for until it answers, and stopped (SIGTERM, then SIGKILL
if it lingers) at teardown. The fixture modules say what to run and how to tell it is ready;
each server binds 127.0.0.1 only, on a port from `free_port()`."""
from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from support import wait_for


class ServerProcess:
    """One server program, running from `start()` until `stop()`; `stop()` is safe to repeat."""

    def __init__(self, name: str, log: Path) -> None:
        self.name = name
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self, command: list[str], ready: Callable[[], bool], where: str) -> None:
        """Run `command` and wait until `ready()`; a server that exits meanwhile fails the test
        with its log, rather than leaving it to time out."""
        assert self.popen is None, f"{self.name} is already running"
        with self.log.open("ab") as log:
            self.popen = subprocess.Popen(command, stdout=log, stderr=log)
        wait_for(lambda: self._alive() and ready(),
                 what=f"{self.name} on {where} (log: {self.log})")

    def _alive(self) -> bool:
        assert self.popen is not None
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.name} exited: {self.log.read_text()}")
        return True

    def stop(self) -> None:
        """SIGTERM, as systemd would, so that a server saves what it keeps across restarts."""
        if self.popen is None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.popen = None


def answers_http(url: str) -> bool:
    """Whether `url` answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def listens(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port` now."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
