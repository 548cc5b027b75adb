"""`supervisor run` as a real process, and as another user."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

NOW = "2026-11-26T10:01:00Z"


def command() -> list[str]:
    installed = Path(sys.executable).parent / "supervisor"
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "supervisor"]


def run(*args: str, timeout: float = 60, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*command(), *args], capture_output=True, text=True, check=False,
                          timeout=timeout, **options)


def start(*args: str, **options: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([*command(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **options)


def as_nobody() -> list[str] | None:
    """A command prefix that runs as `nobody` when we are root ([] when we are not root; None
    when there is no way to drop privileges)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
