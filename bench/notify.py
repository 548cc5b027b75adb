"""Delivery of 10,000 open recommendations to a real Alertmanager, batched.

    python bench/notify.py [--count 10000] [--repeat 3]

Starts Debian's `prometheus-alertmanager` on 127.0.0.1 (a free port, no clustering, a
temporary storage directory), writes an event log holding one run that opened COUNT
recommendations (the lines `supervisor run` writes), and times, through the installed
`supervisor` command as a user runs it:

- first delivery: `supervisor notify alertmanager URL --once` on a fresh state: reading and
  parsing the log, saving the outbox, posting every alert in batches (1,000 alerts a POST);
- re-post: the same command again with nothing new: the whole open set posted again, as
  `--once` from a timer (or each `--repost` of `--follow`) does to keep Alertmanager's
  resolve_timeout from resolving it.

After each, `GET /api/v2/alerts` must hold exactly COUNT alerts. Prints medians over REPEAT
runs (each on a fresh Alertmanager and state).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PYTHON = sys.executable
SUPERVISOR = str(Path(PYTHON).parent / "supervisor")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_log(path: Path, count: int) -> None:
    ts = "2026-11-26T10:00:00Z"
    with path.open("w") as log:
        for number in range(count):
            node, service = f"node{number // 100:03d}", f"svc{number % 100:02d}"
            fingerprint = hashlib.sha256(f"{node}/{service}".encode()).hexdigest()[:16]
            log.write(json.dumps({
                "ts": ts, "source": "runtime-supervisor", "type": "reconcile_required",
                "instance": "bench", "run_id": "run1",
                "subject": {"kind": "service", "id": f"{node}/{service}"},
                "condition": "unhealthy_service", "action": "redeploy", "severity": "warning",
                "rule": "service-unhealthy", "reason": f"{node}/{service} reports status failed",
                "fingerprint": fingerprint, "id": fingerprint[::-1], "opened_at": ts}) + "\n")


def alerts(url: str) -> int:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=60) as response:
        return len(json.loads(response.read()))


def once(url: str, work: Path) -> float:
    started = time.perf_counter()
    subprocess.run([SUPERVISOR, "notify", "alertmanager", url, "--once", "--quiet",
                    "--events", str(work / "events.log"), "--state", str(work / "state.json")],
                   check=True)
    return time.perf_counter() - started


def measure(count: int) -> tuple[float, float]:
    program = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        (work / "am.yml").write_text(json.dumps({
            "route": {"receiver": "none"}, "receivers": [{"name": "none"}]}))
        write_log(work / "events.log", count)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [program, f"--config.file={work / 'am.yml'}", f"--storage.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
             "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(300):
                try:
                    with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                        break
                except OSError:
                    time.sleep(0.1)
            first = once(url, work)
            assert alerts(url) == count, "first delivery incomplete"
            again = once(url, work)
            assert alerts(url) == count, "re-post changed the alerts"
        finally:
            server.terminate()
            server.wait(timeout=30)
    return first, again


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    from supervisor.notify.alertmanager import BATCH

    results = [measure(options.count) for _ in range(options.repeat)]
    first = statistics.median(r[0] for r in results)
    again = statistics.median(r[1] for r in results)
    print(f"{options.count} open recommendations to Alertmanager, batches of {BATCH}, "
          f"median of {options.repeat}:")
    print(f"  first delivery (read the log, save the outbox, post): {first:.2f} s"
          f" ({options.count / first:,.0f} alerts/s)")
    print(f"  re-post of the open set (--once, nothing new):        {again:.2f} s")


if __name__ == "__main__":
    main()
