"""The checkpoint: one instance's replayed event log, so that a run need not replay the whole log.

The log is the source of truth. A checkpoint that lags the log (a run killed between appending
and checkpointing) is brought up to date from the log's tail; a missing one is rebuilt from the
whole log; an unreadable one, or one that holds nonsense, is moved aside, loudly, and rebuilt
the same way. When the log no longer holds what the checkpoint saw (rotated, truncated,
replaced, deleted), the checkpoint's state is kept and the run writes it into the current log
again (a resync), so that the current file alone always replays to the open recommendations.

A checkpoint belongs to one inventory and one instance; another's is refused, never merged.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from supervisor import schemas
from supervisor.errors import Problem
from supervisor.eventlog import EventLog, Mark
from supervisor.registry import EVENT_TYPES, SUMMARY_STATES
from supervisor.replay import LogState
from supervisor.safefile import (
    UnsafeFileError,
    check_file,
    open_file,
    refuse,
    remove_leftovers,
    replace_atomically,
)
from supervisor.schemas import JsonSource
from supervisor.timestamps import parse_time

VERSION = 2
EMPTY = Mark(0, hashlib.sha256(b"").hexdigest())
_MAX_BYTES = 256 << 20  # a checkpoint holds the open set only; anything larger is not ours


@dataclass
class Checkpoint:
    state: LogState
    inventory: str  # the absolute path of the inventory it was written for
    mark: Mark = EMPTY  # where in the log the replay stopped
    inputs_digest: str | None = None  # of the inputs last evaluated
    valid_until: str | None = None  # until when that evaluation holds for the same inputs
    last_error: str | None = None  # the input problem last reported, to report it once
    observed_at: str | None = None  # of the world last evaluated
    resync: bool = field(default=False, compare=False)  # the log lost what this state says
    saved: bool = field(default=False, compare=False)  # as on disk: no need to write it again

    def to_json(self) -> dict[str, Any]:
        state = self.state
        return {
            "version": VERSION,
            "instance": state.instance,
            "inventory": self.inventory,
            "log_size": self.mark.size,
            "log_tail": self.mark.tail,
            "summary": state.summary,
            "summary_id": state.summary_id,
            "open": dict(sorted(state.open.items())),
            "inputs_digest": self.inputs_digest,
            "valid_until": self.valid_until,
            "last_error": self.last_error,
            "observed_at": self.observed_at,
        }


def load_checkpoint(path: Path, log: EventLog, instance: str, inventory: str,
                    warn: Callable[[str], None]) -> Checkpoint:
    """The checkpoint, caught up with the log. Call it holding the checkpoint's lock."""
    for name in remove_leftovers(path):
        warn(f"{path.parent / name}: removed a temporary file that a killed run left")
    checkpoint = _read(path, warn)
    if checkpoint is None:
        checkpoint = Checkpoint(LogState(instance), inventory)
        checkpoint.mark = log.replay(checkpoint.state)
        if checkpoint.state.open or checkpoint.state.summary is not None:
            warn(f"{path}: rebuilt the open recommendations from {log.path}")
    else:
        _check_written_for(path, checkpoint, instance, inventory)
        if log.holds(checkpoint.mark):
            # Lines the checkpoint has not seen: a run killed after appending.
            seen = checkpoint.mark
            checkpoint.mark = log.replay(checkpoint.state, checkpoint.mark.size)
            checkpoint.saved = checkpoint.mark == seen
        else:
            # Anything of ours in the new file was written after the rotation (a resync a
            # killed run began, and its transitions), so it applies on top.
            checkpoint.mark = log.replay(checkpoint.state)
            checkpoint.resync = True
            warn(f"{log.path}: rotated, truncated, replaced or deleted since the last run; "
                 f"writing the {len(checkpoint.state.open)} open recommendation(s) to it "
                 "again (a resync)")
    state = checkpoint.state
    if state.broken:
        warn(f"{log.path}: skipped {state.broken} broken line(s) of instance {instance!r} "
             f"(the first: {state.first_broken})")
        state.broken, state.first_broken = 0, None
    return checkpoint


@dataclass(frozen=True)
class Glance:
    """What a run needs of the checkpoint to find that it has nothing to do, and to say so."""

    inputs_digest: str | None
    valid_until: str | None
    last_error: str | None
    observed_at: str | None
    summary: str | None
    open: int


def glance(path: Path, log: EventLog, instance: str, inventory: str) -> Glance | None:
    """The checkpoint at a glance, from the cache, while the checkpoint and the log are exactly
    as a run left them (else None: read them).

    An unchanged run would otherwise read and check the whole checkpoint (megabytes at 100,000
    services) to learn one digest. The stamps (device, inode, mtime, size, ctime) vouch for the
    files only once they are older than the clock's grain (`cache.trusted`), as the inputs'
    stamps do. Use it holding the checkpoint's lock, as `load_checkpoint`.
    """
    from supervisor import cache

    kept = cache.read(cache.cache_path("checkpoint", _scope(path, log, instance, inventory)),
                      cache.identity(None))
    if kept is None:
        return None
    stamps = _stamps(path, log)
    taken = kept.get("taken")
    if (kept.get("stamps") != stamps or None in stamps or not isinstance(taken, int)
            or not all(cache.trusted(stamp[1:], taken) for stamp in stamps if stamp)):
        return None
    try:
        seen = Glance(**kept["glance"])
        for moment in (seen.valid_until, seen.observed_at):
            if moment is not None:
                parse_time(moment)
    except (KeyError, TypeError, ValueError):
        return None  # another shape: not ours to trust
    texts = (seen.inputs_digest, seen.valid_until, seen.last_error, seen.observed_at,
             seen.summary)
    if not (all(text is None or isinstance(text, str) for text in texts)
            and type(seen.open) is int):
        return None
    return seen


def remember(path: Path, log: EventLog, checkpoint: Checkpoint,
             seen: Glance | None = None) -> None:
    """Keeps `checkpoint` at a glance for the next run, unless that is what `seen` was. Call it
    when `path` holds `checkpoint`, written against the log as it is now."""
    from supervisor import cache

    state = checkpoint.state
    now = Glance(checkpoint.inputs_digest, checkpoint.valid_until, checkpoint.last_error,
                 checkpoint.observed_at, state.summary, len(state.open))
    if now == seen:
        return
    cache.write(cache.cache_path("checkpoint",
                                 _scope(path, log, state.instance, checkpoint.inventory)),
                cache.identity(None),
                {"stamps": _stamps(path, log), "taken": cache.now_ns(), "glance": asdict(now)})


def _stamps(path: Path, log: EventLog) -> list[list[int] | None]:
    """The checkpoint's and the log's stamps, as the cache keeps them (JSON lists)."""
    return [None if stamp is None else list(stamp)
            for stamp in (_file_stamp(path), _file_stamp(log.path))]


def _scope(path: Path, log: EventLog, instance: str, inventory: str) -> str:
    return repr([os.path.abspath(path), os.path.abspath(log.path), instance, inventory])


class Kept:
    """A long-running process's checkpoint, kept between its runs.

    A heartbeat that finds nothing new would otherwise read and check the whole checkpoint
    (every open recommendation) each time. The kept one is used while the checkpoint file and
    the log are exactly as this process left them: the same files (device, inode), sizes and
    times. Anything else (another run, a rotation, an edit) reads them again, as a first run
    does. Use it holding the checkpoint's lock, as `load_checkpoint`.
    """

    def __init__(self) -> None:
        self._kept: tuple[FileStamp, FileStamp, Checkpoint] | None = None

    def load(self, path: Path, log: EventLog, instance: str, inventory: str,
             warn: Callable[[str], None]) -> Checkpoint:
        kept, self._kept = self._kept, None  # given out once: the run changes it
        if kept is not None:
            checkpoint_stamp, log_stamp, checkpoint = kept
            if (checkpoint_stamp is not None and _file_stamp(path) == checkpoint_stamp
                    and _file_stamp(log.path) == log_stamp
                    and checkpoint.state.instance == instance
                    and checkpoint.inventory == inventory):
                return checkpoint
        return load_checkpoint(path, log, instance, inventory, warn)

    def keep(self, path: Path, log: EventLog, checkpoint: Checkpoint) -> None:
        """`checkpoint` is what `path` now holds, written against the log as it is now."""
        checkpoint.saved, checkpoint.resync = True, False
        self._kept = (_file_stamp(path), _file_stamp(log.path), checkpoint)


# device, then the inputs' stamp (`cache.Stamp`): inode, mtime_ns, size, ctime_ns
FileStamp = tuple[int, int, int, int, int] | None


def _file_stamp(path: Path) -> FileStamp:
    try:
        status = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (status.st_dev, status.st_ino, status.st_mtime_ns, status.st_size,
            status.st_ctime_ns)


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    # Compact, so that json's C encoder writes it: with an indent, json encodes in Python,
    # which at 100,000 services took most of a watched change's latency.
    data = json.dumps(checkpoint.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
    replace_atomically(path, data.encode())


def _check_written_for(path: Path, checkpoint: Checkpoint, instance: str,
                          inventory: str) -> None:
    written_for = f"the inventory {checkpoint.inventory} (instance {checkpoint.state.instance!r})"
    wanted = f"{inventory} (instance {instance!r})"
    if checkpoint.inventory != inventory or checkpoint.state.instance != instance:
        raise refuse(path, f"was written for {written_for}, not for {wanted}; give each "
                     "inventory its own --checkpoint (and --instance), or remove this one to "
                     "start over from the event log")


def _read(path: Path, warn: Callable[[str], None]) -> Checkpoint | None:
    if not os.path.lexists(path):
        return None
    descriptor = open_file(path, os.O_RDONLY)
    try:
        check_file(path, descriptor)
        chunks, total = [], 0
        while total <= _MAX_BYTES and (chunk := os.read(descriptor, 1 << 20)):
            chunks.append(chunk)
            total += len(chunk)
    except OSError as error:
        raise refuse(path, f"cannot be read: {error.strerror}") from None
    finally:
        os.close(descriptor)
    content = b"".join(chunks)
    problems: list[Problem] = []
    if len(content) > _MAX_BYTES:
        problems = [Problem(str(path), message=f"is larger than {_MAX_BYTES >> 20} MiB")]
    else:
        try:
            document = json.loads(content)
            problems = schemas.check("checkpoint", document, JsonSource(str(path)))
        except (ValueError, RecursionError):
            problems = [Problem(str(path), message="is not valid JSON")]
    if not problems:
        problems = _nonsense(path, document)
    if problems:
        _move_aside(path, problems, warn)
        return None
    state = LogState(document["instance"], open=document["open"],
                     summary=document.get("summary"), summary_id=document.get("summary_id"))
    return Checkpoint(state, document["inventory"],
                      Mark(document["log_size"], document["log_tail"]),
                      document.get("inputs_digest"), document.get("valid_until"),
                      document.get("last_error"), document.get("observed_at"))


def _nonsense(path: Path, document: dict[str, Any]) -> list[Problem]:
    """What the schema cannot say: names that must come from the registries, keys that must
    agree with what they index."""
    source = JsonSource(str(path))
    problems = []
    if document.get("summary") not in (None, *SUMMARY_STATES):
        problems.append(source.problem(("summary",), "is not a summary state"))
    for fingerprint, entry in document["open"].items():
        if entry["event"] not in EVENT_TYPES:
            problems.append(source.problem(("open", fingerprint, "event"),
                                           "is not a reconcile event type"))
        if entry["fingerprint"] != fingerprint:
            problems.append(source.problem(("open", fingerprint, "fingerprint"),
                                           "differs from the key it is filed under"))
    return problems


def _move_aside(path: Path, problems: list[Problem], warn: Callable[[str], None]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    number = 1
    while os.path.lexists(aside):  # two in the same instant: the lock makes the check safe
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{number}")
        number += 1
    try:
        os.rename(path, aside)
    except OSError as error:
        raise UnsafeFileError([Problem(str(path), message="is unreadable and cannot be moved "
                                       f"aside: {error.strerror}")]) from None
    for problem in problems:
        warn(f"{problem}")
    warn(f"WARNING: {path} was unreadable; moved it to {aside} and rebuilt the state from the "
         "event log")
