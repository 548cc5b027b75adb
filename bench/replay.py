"""Replaying a year of event log: time against the floor (reading the same file line by line
with `json.loads`), and peak memory, each in its own child process.

    python bench/replay.py [--lines 1000000] [--open 1000] [--repeat 3] [--out bench/out]

Generates (once, kept under --out) a log of --lines lines as `run` writes them: episodes of
about --open recommendations opening, changing and resolving, summary
lines, a resync after each of 12 rotations, another instance's lines and a few foreign ones,
about 430 bytes a line. Then, interleaved --repeat times, in fresh interpreters:

- floor: `for line in file: json.loads(line)`, nothing kept;
- replay: `EventLog(path).replay(LogState(instance))`, which is what rebuilding a checkpoint
  does.

Reports the median seconds of each (the loop only, not the interpreter's start), their ratio,
and the peak resident memory of each child (`ru_maxrss`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTANCE = "lab-0badcafe"
START = 1767225600  # 2026-01-01T00:00:00Z; a line every 30 s
EVENTS = ("reconcile_required", "reconcile_recommended", "reconcile_blocked")
ACTIONS = ("redeploy", "restart", "diagnostics", "check_node", "deploy", "investigate")
SEVERITIES = ("info", "warning", "critical")


def generate(path: Path, lines: int, target_open: int, seed: int = 1) -> None:
    chance = random.Random(seed)
    # Picked among twice the target, and resolved half the times an open one is picked, about
    # 2/3 of the pool is open at any time.
    fingerprints = [f"{index:016x}" for index in range(target_open * 3 // 2)]
    open_now: dict[str, dict[str, object]] = {}  # fingerprint -> the line that opened it
    written = 0
    second = 0
    temporary = path.with_suffix(".partial")
    with temporary.open("w") as handle:
        def emit(line: dict[str, object]) -> None:
            nonlocal written
            handle.write(json.dumps(line, separators=(",", ":")) + "\n")
            written += 1

        while written < lines:
            second += 1
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + second * 30))
            run_id = f"{second:012x}"
            roll = chance.random()
            if roll < 0.02:
                emit({"ts": ts, "source": "backup-agent", "msg": "nightly backup done"})
                continue
            if roll < 0.07:
                emit({"ts": ts, "source": "runtime-supervisor", "type": "reconcile_required",
                      "instance": "other-site", "subject": {"kind": "service", "id": "x/y"},
                      "fingerprint": chance.choice(fingerprints), "id": run_id})
                continue
            fingerprint = chance.choice(fingerprints)
            node = int(fingerprint, 16) % 300
            subject = {"kind": "service", "id": f"node{node:03d}/service{int(fingerprint, 16):05d}"}
            base = {"ts": ts, "source": "runtime-supervisor", "instance": INSTANCE,
                    "subject": subject, "condition": "unhealthy_service",
                    "rule": "service-unhealthy",
                    "reason": f"{subject['id']} reports status failed",
                    "fingerprint": fingerprint, "run_id": run_id}
            resolve = fingerprint in open_now and chance.random() < 0.5
            if resolve:
                opened = open_now.pop(fingerprint)
                emit({**base, "type": "reconcile_resolved", "action": opened["action"],
                      "severity": opened["severity"], "id": f"r{second:015x}",
                      "opened_at": opened["opened_at"]})
            else:
                before = open_now.get(fingerprint)
                line = {**base, "type": chance.choice(EVENTS), "action": chance.choice(ACTIONS),
                        "severity": chance.choice(SEVERITIES), "id": f"o{second:015x}",
                        "opened_at": before["opened_at"] if before else ts}
                open_now[fingerprint] = line
                emit(line)
            if written % (lines // 12 or 1) == 0:  # a rotation: the run after it resyncs
                for line in list(open_now.values()):
                    emit({**line, "ts": ts, "run_id": run_id, "resync": True})
            if second % 500 == 0:
                emit({"ts": ts, "source": "runtime-supervisor", "type": "supervisor_summary",
                      "instance": INSTANCE, "summary": chance.choice(("degraded", "unstable")),
                      "previous": None, "run_id": run_id, "id": f"s{second:015x}"})
    os.replace(temporary, path)


def measure(kind: str, path: Path) -> None:
    """In the child: time the loop, print the seconds and the open count as JSON."""
    if kind == "floor":
        started = time.perf_counter()
        with path.open("rb") as handle:
            for line in handle:
                json.loads(line)
        elapsed, count = time.perf_counter() - started, 0
    else:
        sys.path.insert(0, str(HERE.parent))
        from supervisor.eventlog import EventLog
        from supervisor.replay import LogState

        state = LogState(INSTANCE)
        started = time.perf_counter()
        EventLog(path).replay(state)
        elapsed, count = time.perf_counter() - started, len(state.open)
    print(json.dumps({"seconds": elapsed, "open": count}))


def child(kind: str, path: Path) -> tuple[float, int, int]:
    """Seconds, open count and peak RSS (KiB) of one measuring child."""
    process = subprocess.Popen([sys.executable, __file__, "--measure", kind, str(path)],
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed")
    result = json.loads(output)
    return result["seconds"], result["open"], int(usage.ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--open", type=int, default=1000, help="the open set to aim for")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.measure:
        measure(arguments.measure[0], Path(arguments.measure[1]))
        return
    arguments.out.mkdir(parents=True, exist_ok=True)
    path = arguments.out / f"replay-{arguments.lines}-{arguments.open}.log"
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        generate(path, arguments.lines, arguments.open)
    samples: dict[str, list[tuple[float, int, int]]] = {"floor": [], "replay": []}
    for _ in range(arguments.repeat):
        for kind, found in samples.items():
            found.append(child(kind, path))
    floor = statistics.median(s[0] for s in samples["floor"])
    replay = statistics.median(s[0] for s in samples["replay"])
    size = path.stat().st_size
    print(f"log: {path.name}, {arguments.lines:,} lines, {size / 1e6:.0f} MB, "
          f"{samples['replay'][0][1]:,} open at the end")
    print(f"floor  (json.loads per line): {floor:6.2f} s   peak RSS "
          f"{max(s[2] for s in samples['floor']) / 1024:6.1f} MiB")
    print(f"replay (EventLog.replay):     {replay:6.2f} s   peak RSS "
          f"{max(s[2] for s in samples['replay']) / 1024:6.1f} MiB")
    print(f"ratio replay/floor: {replay / floor:.2f} (median of {arguments.repeat}, interleaved)")


if __name__ == "__main__":
    main()
