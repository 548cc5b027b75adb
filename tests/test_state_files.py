"""The state files in a shared /tmp and on a failing disk (issue 11 items 6 and 7): files of
other users, hard links, FIFOs, devices, directories, held locks, hostile parent directories,
a full disk, planted temporary files, nonsense checkpoints. Real files and real processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import wait_for
from support.runs import NOW, as_nobody, run, start
from support.scenarios import FIXTURES

from supervisor.eventlog import EventLog
from supervisor.inputs import Inputs
from supervisor.replay import LogState
from supervisor.safefile import UnsafeFileError
from supervisor.transitions import Paths, run_once

HOMELAB = FIXTURES / "homelab"


def inputs(now: str = NOW) -> Inputs:
    return Inputs(inventory=HOMELAB / "hosts", world=HOMELAB / "world", now=now)


def quiet(message: str) -> None:
    del message


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    (tmp_path / "state").mkdir()
    return Paths(events=tmp_path / "state" / "events.log",
                 checkpoint=tmp_path / "state" / "checkpoint.json")


def once(paths: Paths, *extra: str) -> subprocess.CompletedProcess[str]:
    return run("run", str(HOMELAB), "--now", NOW, "--events", str(paths.events),
               "--checkpoint", str(paths.checkpoint), *extra)


def refused(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert text in result.stderr, result.stderr


def state_file(paths: Paths, which: str) -> Path:
    return {"log": paths.events, "checkpoint": paths.checkpoint, "lock": paths.lock}[which]


# -- 6. files that are not ours, or not plain files --------------------------------------------

@pytest.mark.parametrize("which", ["log", "checkpoint", "lock"])
def test_a_state_file_owned_by_another_user_is_refused(paths: Paths, which: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a file to another user")
    planted = state_file(paths, which)
    planted.write_text("")
    planted.chmod(0o666)
    os.chown(planted, 65534, 65534)
    result = once(paths)
    refused(result, f"{planted}: is owned by uid 65534, not by this user (uid 0) or root; "
            "refusing to use it: choose another path, or have its owner remove it")


@pytest.mark.parametrize("which", ["log", "checkpoint", "lock"])
def test_a_hard_linked_state_file_is_refused(paths: Paths, which: str, tmp_path: Path) -> None:
    run_once(inputs(), paths, warn=quiet)
    os.link(state_file(paths, which), tmp_path / "second-name")
    before = paths.events.read_bytes()
    with pytest.raises(UnsafeFileError, match="has 2 hard links, so it can be read or changed "
                       "under another name"):
        run_once(inputs("2026-11-26T11:00:00Z"), paths, warn=quiet)
    assert paths.events.read_bytes() == before


@pytest.mark.parametrize("which", ["log", "checkpoint", "lock"])
def test_a_fifo_as_a_state_file_is_refused_not_waited_on(paths: Paths, which: str) -> None:
    os.mkfifo(state_file(paths, which))
    result = once(paths)  # the process would block forever on a FIFO, or fail fsync (EINVAL)
    refused(result, f"{state_file(paths, which)}: is a FIFO, not a regular file")


def test_dev_null_as_the_log_is_refused(paths: Paths) -> None:
    refused(once(paths, "--events", "/dev/null"),
            "/dev/null: is a character device, not a regular file; choose a file's path")


@pytest.mark.parametrize("option", ["--events", "--checkpoint"])
def test_a_directory_as_a_state_file_is_refused(paths: Paths, option: str) -> None:
    directory = paths.events.parent / "a-directory"
    directory.mkdir()
    refused(once(paths, option, str(directory)),
            f"{directory}: is a directory, not a file; choose a file's path")


@pytest.mark.parametrize("option", ["--events", "--checkpoint"])
def test_an_empty_path_is_refused(paths: Paths, option: str) -> None:
    refused(once(paths, option, ""), f"{option}: names no file")


@pytest.mark.parametrize(("extra", "text"), [
    (("--once", "--interval", "5"), "--once: excludes --interval and --watch"),
    (("--once", "--watch"), "--once: excludes --interval and --watch"),
    (("--interval", "0"), "--interval: must be a positive number of seconds"),
    (("--interval", "inf"), "--interval: must be a positive number of seconds"),
])
def test_a_schedule_that_cannot_be_kept_is_refused(paths: Paths, extra: tuple[str, ...],
                                                   text: str) -> None:
    refused(once(paths, *extra), text)
    assert not paths.events.exists()  # refused before anything ran


def test_a_state_directory_symlink_of_another_user_is_refused(paths: Paths,
                                                              tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to give a symlink to another user")
    (tmp_path / "via").symlink_to(paths.events.parent)
    os.lchown(tmp_path / "via", 65534, 65534)
    linked = Paths(tmp_path / "via" / "events.log", paths.checkpoint)
    with pytest.raises(UnsafeFileError, match=r"via: is a symlink owned by uid 65534, who could "
                       "point it elsewhere; refusing to keep state files under it"):
        run_once(inputs(), linked, warn=quiet)
    assert not paths.events.exists()


def test_a_state_directory_symlink_of_ours_is_judged_by_its_target(paths: Paths,
                                                                   tmp_path: Path) -> None:
    """As systemd's DynamicUser= state directory (/var/lib/NAME -> private/NAME)."""
    (tmp_path / "via").symlink_to(paths.events.parent)
    linked = Paths(tmp_path / "via" / "events.log", paths.checkpoint)
    paths.events.parent.chmod(0o777)
    with pytest.raises(UnsafeFileError, match="state: is writable by other users and not sticky"):
        run_once(inputs(), linked, warn=quiet)
    paths.events.parent.chmod(0o700)
    run_once(inputs(), linked, warn=quiet)
    assert paths.events.exists()


def test_a_directory_others_can_write_is_refused_unless_sticky(paths: Paths) -> None:
    directory = paths.events.parent
    directory.chmod(0o777)
    with pytest.raises(UnsafeFileError, match="is writable by other users and not sticky"):
        run_once(inputs(), paths, warn=quiet)
    assert list(directory.iterdir()) == []
    directory.chmod(0o1777)  # like /tmp
    run_once(inputs(), paths, warn=quiet)
    assert paths.events.exists()


def test_files_of_root_and_of_the_running_user_are_fine() -> None:
    """As an unprivileged user, a log that root created is used (not refused as foreign)."""
    prefix = as_nobody()
    if not prefix:
        pytest.skip("needs root (to create root's file) and setpriv (to drop privileges)")
    base = Path(tempfile.mkdtemp(prefix="supervisor-owners-"))
    try:
        base.chmod(0o755)
        state = base / "state"
        state.mkdir()
        os.chown(state, 65534, 65534)
        log = state / "events.log"
        log.write_text('{"source": "backup-agent"}\n')
        log.chmod(0o666)  # root's file, writable by the run
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "supervisor", "run", str(HOMELAB), "--now", NOW,
             "--events", str(log), "--checkpoint", str(state / "checkpoint.json")],
            capture_output=True, text=True, check=False, timeout=60, cwd=base)
        assert result.returncode == 0, result.stderr
        assert log.stat().st_uid == 0
        assert (state / "checkpoint.json").stat().st_uid == 65534
        assert len(log.read_text().splitlines()) == 9  # theirs, 7 recommendations, the summary
    finally:
        shutil.rmtree(base)


# -- 6. the lock: held by another process ------------------------------------------------------

@contextlib.contextmanager
def holding(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding an exclusive flock on `path` until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import fcntl, os, sys, time\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.kill()
        holder.communicate()


def opened(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open (it is then past start-up, signal handlers set)."""
    with contextlib.suppress(OSError):
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(descriptor) == str(path):
                    return True
    return False


@pytest.mark.parametrize("which", ["lock", "log"])
def test_a_held_lock_ends_once_with_exit_2(paths: Paths, which: str) -> None:
    if which == "log":
        once(paths)  # a log to hold
    with holding(state_file(paths, which)):
        # An hour later the world is stale: the run has something to write.
        result = once(paths, "--lock-timeout", "0.5", "--now", "2026-11-26T11:01:00Z")
    refused(result, f"{state_file(paths, which)}: still locked by another process after 0.5 s")


def test_the_loop_reports_a_held_lock_and_carries_on(paths: Paths) -> None:
    with holding(paths.lock):
        process = start("run", str(HOMELAB), "--now", NOW, "--interval", "0.2",
                        "--lock-timeout", "0.3", "--events", str(paths.events),
                        "--checkpoint", str(paths.checkpoint))
        assert process.stderr is not None
        first = process.stderr.readline()
        assert "still locked by another process after 0.3 s" in first
    # Released: the loop gets through and writes the run's lines (after the error line).
    try:
        assert process.stdout is not None
        assert "unstable, 7 open" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err
    lines = EventLog(paths.events).read()
    assert lines[0]["type"] == "supervisor_error"
    assert "still locked" in lines[0]["problems"][0]
    assert len([e for e in lines if e["type"] == "supervisor_error"]) == 1  # logged once


def test_sigterm_stops_a_loop_waiting_for_the_lock(paths: Paths) -> None:
    with holding(paths.lock):
        process = start("run", str(HOMELAB), "--now", NOW, "--interval", "60",
                        "--lock-timeout", "3600", "--events", str(paths.events),
                        "--checkpoint", str(paths.checkpoint))
        wait_for(lambda: opened(process.pid, paths.lock), what="the loop waiting for the lock")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)  # not 3600 s
    assert process.returncode == 0, err
    assert "Traceback" not in err


# -- 7. a full disk -----------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real ENOSPC."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs",
                              str(mountpoint)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    return filler


FOREIGN = b'{"source": "backup-agent", "pad": "' + b"x" * 4056 + b'"}\n'  # one whole page


def test_a_full_disk_ends_once_with_exit_2_and_a_whole_log(small_disk: Path) -> None:
    paths = Paths(small_disk / "events.log", small_disk / "checkpoint.json")
    paths.events.write_bytes(FOREIGN)
    filler = fill(small_disk)
    result = once(paths)
    refused(result, f"{paths.events}: cannot be written: No space left on device")
    assert paths.events.read_bytes() == FOREIGN  # nothing half-written
    assert not paths.checkpoint.exists()
    filler.unlink()
    assert once(paths).returncode == 0
    assert len(EventLog(paths.events).read()) == 9


def test_a_full_disk_after_the_append_is_caught_up_later(small_disk: Path) -> None:
    paths = Paths(small_disk / "events.log", small_disk / "checkpoint.json")
    paths.events.write_text('{"source": "backup-agent"}\n')  # our lines fit in its page
    filler = fill(small_disk)
    result = once(paths)
    refused(result, f"{paths.checkpoint}: cannot be written: No space left on device")
    assert [p.name for p in small_disk.iterdir() if p.name.endswith(".tmp")] == []
    written = paths.events.read_bytes()
    filler.unlink()
    assert once(paths).returncode == 0
    assert paths.events.read_bytes() == written  # caught up from the log, nothing doubled
    assert len(json.loads(paths.checkpoint.read_text())["open"]) == 7


def test_the_loop_survives_a_full_disk(small_disk: Path) -> None:
    paths = Paths(small_disk / "events.log", small_disk / "checkpoint.json")
    filler = fill(small_disk)
    process = start("run", str(HOMELAB), "--now", NOW, "--interval", "0.2",
                    "--events", str(paths.events), "--checkpoint", str(paths.checkpoint))
    try:
        assert process.stderr is not None and process.stdout is not None
        assert "No space left on device" in process.stderr.readline()
        # The log itself is what fails, so the error goes to stderr only.
        assert process.stderr.readline().startswith("supervisor: the run failed; state kept")
        assert "cannot record that in the event log either" in process.stderr.readline()
        filler.unlink()
        assert "unstable, 7 open" in process.stdout.readline()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err
    state = LogState(EventLog(paths.events).read()[0]["instance"])
    EventLog(paths.events).replay(state)
    assert len(state.open) == 7


def test_the_loop_survives_its_metrics_directory_vanishing(paths: Paths, tmp_path: Path) -> None:
    metrics = tmp_path / "textfile" / "supervisor.prom"
    metrics.parent.mkdir()
    process = start("run", str(HOMELAB), "--now", NOW, "--interval", "0.2", "-q",
                    "--metrics-file", str(metrics), "--events", str(paths.events),
                    "--checkpoint", str(paths.checkpoint))
    try:
        assert process.stderr is not None
        wait_for(metrics.exists, what="the first metrics file")
        shutil.rmtree(metrics.parent)
        assert f"{metrics}: cannot be written" in process.stderr.readline()
        metrics.parent.mkdir()
        wait_for(metrics.exists, what="metrics again once the directory is back")
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "Traceback" not in err
    errors = [e for e in EventLog(paths.events).read() if e["type"] == "supervisor_error"]
    assert len(errors) == 1 and "cannot be written" in errors[0]["problems"][0]


# -- 7. temporary files and nonsense checkpoints ------------------------------------------------

def test_a_file_planted_at_the_old_temporary_name_changes_nothing(paths: Paths) -> None:
    # The temporary name used to be `.<checkpoint>.<pid>.tmp`: predictable, so a directory
    # planted there made every run fail, and a file there was written through.
    (paths.checkpoint.parent / f".checkpoint.json.{os.getpid()}.tmp").mkdir()
    run_once(inputs(), paths, warn=quiet)
    assert json.loads(paths.checkpoint.read_text())["version"] == 2


def test_temporary_files_of_killed_runs_are_removed(paths: Paths) -> None:
    leftover = paths.checkpoint.parent / ".checkpoint.json.k1ll3d.tmp"
    leftover.write_text("half a checkpoint")
    unrelated = paths.checkpoint.parent / ".other.json.k1ll3d.tmp"
    unrelated.write_text("not ours to remove")
    messages: list[str] = []
    run_once(inputs(), paths, warn=messages.append)
    assert not leftover.exists() and unrelated.exists()
    assert f"{leftover}: removed a temporary file that a killed run left" in messages


NONSENSE = {
    "valid_until": ("valid_until", "soon"),
    "observed_at": ("observed_at", "yesterday"),
    "summary": ("summary", "splendid"),
    "no action": ("open", "drop action"),
    "wrong key": ("open", "rekey"),
    "negative size": ("log_size", -1),
}


@pytest.mark.parametrize("case", list(NONSENSE))
def test_a_nonsense_checkpoint_is_moved_aside_and_rebuilt(paths: Paths, case: str) -> None:
    run_once(inputs(), paths, warn=quiet)
    document = json.loads(paths.checkpoint.read_text())
    key, value = NONSENSE[case]
    fingerprint = next(iter(document["open"]))
    if value == "drop action":
        del document["open"][fingerprint]["action"]
    elif value == "rekey":
        document["open"]["elsewhere"] = document["open"].pop(fingerprint)
    else:
        document[key] = value
    paths.checkpoint.write_text(json.dumps(document))
    first, second = once(paths), once(paths)  # and it does not fail again after a restart
    for result in (first, second):
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "was unreadable; moved it to" in first.stderr
    assert second.stderr == ""
    assert len(list(paths.checkpoint.parent.glob("checkpoint.json.corrupt-*"))) == 1
    assert len(json.loads(paths.checkpoint.read_text())["open"]) == 7
