"""The `command` executor: runs a program with the subject's fields as arguments.

No shell ever sees the arguments (a service name cannot become `; rm -rf /`), the program gets a
clean environment (only a fixed PATH and what the policy lists under `env`), no standard input,
and its own process group, so that a timeout kills everything it started, not just the parent.
Its output goes to a file rather than a pipe: a grandchild that keeps a pipe open would make the
supervisor wait on it forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from typing import Any

from supervisor.remediation.executor import ArgumentProblem, Context, Done, seconds, unknown_keys

KNOWN = ("argv", "timeout", "env")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TIMEOUT = 60.0
MOST_TIMEOUT = 3600.0
ABSOLUTE = "the program must be an absolute path, written out (not looked up, not a template)"
OUTPUT_SHOWN = 400  # characters of the program's output kept in the event


class Command:
    def check(self, args: dict[str, Any]) -> list[ArgumentProblem]:
        problems = unknown_keys(args, KNOWN)
        argv = args.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            problems.append((("argv",), "must be a list of strings: the program, then its args"))
        elif not argv[0].startswith("/") or "{{" in argv[0]:
            problems.append((("argv", 0), ABSOLUTE))
        problems.extend(seconds(args, "timeout", DEFAULT_TIMEOUT, MOST_TIMEOUT)[1])
        env = args.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            problems.append((("env",), "must map names to strings"))
        return problems

    def execute(self, args: dict[str, Any], context: Context) -> Done:
        timeout = float(args.get("timeout", DEFAULT_TIMEOUT))
        environment = {"PATH": PATH, "LANG": "C.UTF-8", **args.get("env", {})}
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(
                    args["argv"], env=environment, stdin=subprocess.DEVNULL, stdout=output,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, cwd="/")
            except OSError as error:
                return Done(False, f"cannot run {args['argv'][0]}: {error.strerror}")
            try:
                status = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                return Done(False, f"timed out after {timeout:g} s; its process group was "
                            f"killed{_tail(output)}")
            finally:
                if process.returncode is None:  # interrupted while waiting: leave nothing behind
                    _kill_group(process)
            if status != 0:
                how = (f"was killed by signal {-status}" if status < 0
                       else f"exited with status {status}")
                return Done(False, f"{args['argv'][0]} {how}{_tail(output)}")
            return Done(True, f"{args['argv'][0]} exited with status 0{_tail(output)}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the group's id is the child's pid (new session)
    process.wait()


def _tail(output: Any) -> str:
    output.seek(0, os.SEEK_END)
    size = output.tell()
    output.seek(max(0, size - OUTPUT_SHOWN * 4))
    text = " ".join(output.read().decode("utf-8", "replace").split())
    if not text:
        return ""
    return f": {text[-OUTPUT_SHOWN:]}"


EXECUTOR = Command()
