"""`supervisor remediate` as a real process, killed with SIGKILL mid-action."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

from support import wait_for
from support.runs import NOW, run, start
from support.scenarios import write_scenario


def test_a_kill_between_start_and_verification_leaves_a_visible_attempt_never_repeated(
        tmp_path: Path) -> None:
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n"},
                          services={"nas01/web": {"status": "stopped"}})
    pidfile = tmp_path / "action.pid"
    (root / "policy").mkdir()
    # The action records its process and then takes its time: the kill lands while it runs.
    (root / "policy" / "p.yaml").write_text(
        "policies:\n  - id: slow\n    match: \"recommendation.action == 'redeploy'\"\n"
        "    executor: command\n"
        f"    args: {{argv: [/bin/sh, -c, 'echo $$ > {pidfile}; exec sleep 120']}}\n")
    events = root / "events.log"
    state = ["--events", str(events), "--checkpoint", str(root / "cp.json"),
             "--remediations", str(root / "remediations.json")]
    assert run("run", str(root), "--now", NOW, *state).returncode == 0
    remediate = ["remediate", str(root), "--now", NOW, *state, "--holds",
                 str(root / "holds.json"), "--policy", str(root / "policy"), "--execute"]
    process = start(*remediate)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "",
                 what="the action to start")
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
        if pidfile.exists():  # the action's own session survives its parent: end it
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.killpg(int(pidfile.read_text()), signal.SIGKILL)
    types = [json.loads(line)["type"] for line in events.read_text().splitlines()]
    assert types.count("remediation_started") == 1
    assert "remediation_executed" not in types and "remediation_failed" not in types

    again = run(*remediate)
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    types = [line["type"] for line in lines]
    assert types.count("remediation_started") == 1  # not repeated
    (interrupted,) = [line for line in lines if line["type"] == "remediation_interrupted"]
    (started,) = [line for line in lines if line["type"] == "remediation_started"]
    assert interrupted["attempt"] == started["attempt"]
    assert lines[-1]["type"] == "remediation_skipped" and lines[-1]["guardrail"] == "in_flight"
    listing = run("remediations", "--events", str(events))
    assert f"{started['attempt']}  nas01/web  slow (command)  interrupted" in listing.stdout


def test_interval_passes_until_sigterm(tmp_path: Path) -> None:
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n"},
                          services={"nas01/web": {"status": "stopped"}})
    (root / "policy").mkdir()
    (root / "policy" / "p.yaml").write_text(
        "policies:\n  - id: touch\n    match: \"recommendation.action == 'redeploy'\"\n"
        f"    executor: command\n    args: {{argv: [/usr/bin/touch, '{root}/touched']}}\n")
    state = ["--events", str(root / "events.log"), "--checkpoint", str(root / "cp.json"),
             "--remediations", str(root / "remediations.json")]
    assert run("run", str(root), "--now", NOW, *state).returncode == 0
    process = start("remediate", str(root), "--now", NOW, *state, "--holds",
                    str(root / "holds.json"), "--policy", str(root / "policy"),
                    "--interval", "0.2")
    try:
        assert process.stdout is not None
        first, second = process.stdout.readline(), process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "(dry run): would act on nas01/web (touch)" in first
    assert "(dry run): would act on nas01/web (touch)" in second  # printed on every pass
    assert not (root / "touched").exists()
    lines = [json.loads(line) for line in (root / "events.log").read_text().splitlines()]
    assert [line["type"] for line in lines].count("remediation_planned") == 1  # logged once


def test_watch_runs_a_pass_when_run_writes_the_log(tmp_path: Path) -> None:
    """The systemd unit runs `remediate --watch`: a change to the event log brings a pass
    without waiting for the heartbeat (an hour here)."""
    root = write_scenario(tmp_path / "lab", {"nas01": "services:\n  web: {}\n"},
                          services={"nas01/web": {"status": "stopped"}})
    (root / "policy").mkdir()
    (root / "policy" / "p.yaml").write_text(
        "policies:\n  - id: touch\n    match: \"recommendation.action == 'redeploy'\"\n"
        f"    executor: command\n    args: {{argv: [/usr/bin/touch, '{root}/touched']}}\n")
    state = ["--events", str(root / "events.log"), "--checkpoint", str(root / "cp.json"),
             "--remediations", str(root / "remediations.json")]
    process = start("remediate", str(root), "--now", NOW, *state, "--holds",
                    str(root / "holds.json"), "--policy", str(root / "policy"),
                    "--watch", "--interval", "3600")
    try:
        assert process.stdout is not None
        assert "(dry run): nothing to do" in process.stdout.readline()  # the pass at start
        assert "but none is open in" in process.stdout.readline()  # run has not logged yet
        assert run("run", str(root), "--now", NOW, *state).returncode == 0
        log = root / "events.log"
        wait_for(lambda: "remediation_planned" in log.read_text(),
                 what="a remediate pass after run wrote the event log")
        # A pass may also have started as run took its lock, before it wrote the log.
        line = process.stdout.readline()
        if "(dry run): nothing to do" in line:
            line = process.stdout.readline()
        assert "(dry run): would act on nas01/web (touch)" in line
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert not (root / "touched").exists()
