"""Issue 11 item 1 with Debian's logrotate: copytruncate, rename + create, rename only, and
deletion, between runs and under a running `--interval` or `--watch` loop. The invariant, after
every rotation and the run that follows it: replaying the current log file alone gives exactly
the open recommendations. Also runs the logrotate example and the `jq` replay of docs/events.md.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from support import need, wait_for
from support.runs import NOW, run, start
from support.scenarios import FIXTURES, ROOT, evaluate_dir

from supervisor.eventlog import EventLog
from supervisor.replay import LogState

CONFIGS = {
    "copytruncate": "copytruncate\n    rotate 3",
    "create": "create 0600\n    rotate 3",  # rename, then a new empty file in its place
    "rename": "nocreate\n    rotate 3",  # rename only: the next run creates the log
    "delete": "nocreate\n    rotate 0",  # rotated away and removed
}
EVENTS_DOC = (ROOT / "docs" / "events.md").read_text()


class Lab:
    """A homelab scenario, its state directory, and logrotate set up for its log."""

    def __init__(self, base: Path, config: str) -> None:
        self.root = base / "homelab"
        shutil.copytree(FIXTURES / "homelab", self.root)
        self.state = base / "state"
        self.state.mkdir(mode=0o700)
        self.log = self.state / "events.log"
        self.checkpoint = self.state / "checkpoint.json"
        self.config = base / "logrotate.conf"
        self.config.write_text(config.replace("PATH", str(self.log)))
        self.logrotate = need("logrotate", "logrotate")

    def args(self, *extra: str) -> list[str]:
        return ["run", str(self.root), "--now", NOW, "--instance", "lab", "--events",
                str(self.log), "--checkpoint", str(self.checkpoint), *extra]

    def rotate(self) -> None:
        subprocess.run([self.logrotate, "-f", "-s", str(self.config.parent / "logrotate.state"),
                        str(self.config)], check=True, capture_output=True, text=True)

    def replayed(self) -> dict[str, tuple[str, str, str]]:
        state = LogState("lab")
        EventLog(self.log).replay(state)
        return {fp: (e["event"], e["action"], e["severity"]) for fp, e in state.open.items()}

    def expected(self) -> dict[str, tuple[str, str, str]]:
        return {r.fingerprint: (r.event, r.action, r.severity)
                for r in evaluate_dir(self.root, now=NOW).recommendations}

    def fail(self, service: str) -> None:
        record = self.root / "world" / "services" / f"{service}.json"
        document = json.loads(record.read_text())
        document["status"] = "failed"
        record.write_text(json.dumps(document))


def stanza(kind: str) -> str:
    return f"PATH {{\n    {CONFIGS[kind]}\n    missingok\n}}\n"


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_rotation_between_runs(kind: str, tmp_path: Path) -> None:
    lab = Lab(tmp_path, stanza(kind))
    assert run(*lab.args()).returncode == 0
    for round_ in range(2):
        lab.rotate()
        assert not lab.log.exists() or lab.log.stat().st_size == 0
        if round_:
            lab.fail("nas01/postgres")  # and something changes in the same run
        result = run(*lab.args())
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("(a resync)") == 1
        assert lab.replayed() == lab.expected()
        again = run(*lab.args())
        assert again.returncode == 0 and again.stderr == ""  # warned once
    assert lab.replayed() == lab.expected()


def wait_for_resync(lab: Lab) -> None:
    def resynced() -> bool:
        return any(e.get("resync") for e in EventLog(lab.log).read())

    wait_for(resynced, what="the resync in the current log")


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_rotation_under_the_interval_loop(kind: str, tmp_path: Path) -> None:
    lab = Lab(tmp_path, stanza(kind))
    process = start(*lab.args("--interval", "0.3"))
    try:
        assert process.stdout is not None and "7 open" in process.stdout.readline()
        lab.rotate()
        wait_for_resync(lab)
        assert lab.replayed() == lab.expected()
        lab.rotate()  # and again, with a change after it
        lab.fail("nas01/postgres")
        wait_for(lambda: lab.replayed() == lab.expected(), what="the change after a rotation")
    finally:
        err = stop(process)
    assert err.count("(a resync)") == 2
    assert lab.replayed() == lab.expected()


@pytest.mark.parametrize("kind", ["copytruncate", "rename"])
def test_rotation_under_the_watch_loop(kind: str, tmp_path: Path) -> None:
    """--watch does not watch the log; its heartbeat (here 1 s) notices the rotation."""
    lab = Lab(tmp_path, stanza(kind))
    process = start(*lab.args("--watch", "--interval", "1"))
    try:
        assert process.stdout is not None and "7 open" in process.stdout.readline()
        lab.rotate()
        wait_for_resync(lab)
        assert lab.replayed() == lab.expected()
    finally:
        err = stop(process)
    assert err.count("(a resync)") == 1


def doc_block(language: str, starting: str) -> str:
    (block,) = [b for b in re.findall(rf"```{language}\n(.*?)```", EVENTS_DOC, re.DOTALL)
                if b.startswith(starting)]
    return block


def test_the_documented_logrotate_config(tmp_path: Path) -> None:
    example = doc_block("text", "/var/lib/homelab-supervisor/events.log")
    lab = Lab(tmp_path, example.replace("/var/lib/homelab-supervisor/events.log", "PATH"))
    assert run(*lab.args()).returncode == 0
    for _ in range(3):  # the second rotation compresses the first (delaycompress)
        lab.rotate()
        assert run(*lab.args()).returncode == 0
        assert lab.replayed() == lab.expected()
    assert sorted(p.name for p in lab.state.iterdir() if p.name.startswith("events.log.")) == [
        "events.log.1", "events.log.2.gz", "events.log.3.gz"]


def test_the_documented_jq_replay_after_a_rotation(tmp_path: Path) -> None:
    jq = need("jq", "jq")
    lab = Lab(tmp_path, stanza("copytruncate"))
    assert run(*lab.args()).returncode == 0
    # Another instance shares the log; a foreign writer left a partial line.
    other = tmp_path / "other"
    shutil.copytree(FIXTURES / "missing-service", other)
    assert run("run", str(other), "--events", str(lab.log), "--checkpoint",
               str(tmp_path / "other.json")).returncode == 0
    lab.rotate()
    with lab.log.open("a") as handle:
        handle.write('{"source": "backup-agent", "half": ')
    assert run(*lab.args()).returncode == 0
    command = doc_block("sh", "jq -nrR --arg instance")
    program = re.search(r"'(.*)'", command, re.DOTALL)
    assert program is not None
    result = subprocess.run([jq, "-nrR", "--arg", "instance", "lab", program.group(1),
                             str(lab.log)], capture_output=True, text=True, check=True)
    listed = sorted(line.split("\t")[:3] for line in result.stdout.splitlines())
    expected = sorted([r.subject.id, r.event, r.action]
                      for r in evaluate_dir(lab.root, now=NOW).recommendations)
    assert listed == expected
